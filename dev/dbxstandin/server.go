package dbxstandin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/databricks/databricks-sdk-go/service/jobs"
)

// WorkspaceID is the stand-in workspace's id.
const WorkspaceID = "1234567890123456"

// MaxParameterBytes is Databricks' limit on the JSON of job_parameters.
const MaxParameterBytes = 10000

// Runner executes a run's notebook. It returns an error when the notebook
// failed; the run's result is then FAILED with the error as its message.
type Runner interface {
	Run(ctx context.Context, run RunContext) error
}

// RunnerFunc adapts a function to Runner.
type RunnerFunc func(ctx context.Context, run RunContext) error

// Run calls f.
func (f RunnerFunc) Run(ctx context.Context, run RunContext) error { return f(ctx, run) }

// RunContext is what a Runner gets for one run.
type RunContext struct {
	JobID, RunID int64
	// NotebookPath is the task's workspace path; Notebook its content as
	// imported (nil when nothing was imported there).
	NotebookPath string
	Notebook     []byte
	// Folder holds the other files imported beside the notebook (its
	// Python module), by name.
	Folder map[string][]byte
	// Parameters are the job parameters as the run resolved them.
	Parameters map[string]string
	// EnvVars are the job cluster's spark_env_vars, secrets resolved.
	EnvVars map[string]string
	// Secrets are the workspace's secrets by scope and key: what
	// dbutils.secrets reads on Databricks.
	Secrets map[string]map[string]string
	// Serverless reports a run on serverless compute.
	Serverless bool
	// ServiceCredentials are the Unity Catalog service credentials the
	// run's principal may use (it owns them or holds ACCESS), by name: the
	// client id of the managed identity each signs in as, what
	// dbutils.credentials.getServiceCredentialsProvider(name) gives
	// notebook code on Databricks.
	ServiceCredentials map[string]string
}

// Options configures a Server.
type Options struct {
	// Token is the only bearer token accepted.
	Token string
	// Runner executes notebooks; nil finishes each run at once, SUCCESS.
	Runner Runner
	// QueueDelay, SetupDelay and CleanupDelay are the run's phases around
	// the notebook's execution (cluster start-up and tear-down); a run on
	// serverless compute sets up in ServerlessSetupDelay instead.
	QueueDelay, SetupDelay, CleanupDelay time.Duration
	ServerlessSetupDelay                 time.Duration
	// RunTimeout bounds a run; 10 minutes by default.
	RunTimeout time.Duration
	// FirstRunID is where run ids start (after it); 1000 by default. Runs
	// and their tasks take ids of one sequence, as on Databricks, where a
	// task run has a run id of its own. A stand-in started with a seed
	// from the clock (RunIDSeed) never gives an id an earlier one gave.
	FirstRunID int64
	// Azure, when set, admits Microsoft Entra ID tokens as Azure
	// Databricks does; without it only Token signs in.
	Azure *Azure
}

// Server is the stand-in. Its zero value is not usable; call New.
type Server struct {
	opts     Options
	mu       sync.Mutex
	baseURL  string
	jobs     map[int64]*jobs.Job
	runs     map[int64]*jobs.Run
	tokens   map[string]int64
	objects  map[string]*object
	dirs     map[string]bool
	secrets  map[string]map[string]string
	denied   map[int64]bool
	members  []*member
	acl      map[int64]map[string]level
	creds    map[string]*credential // Unity Catalog service credentials by name
	nextID   int64
	lastRun  int64
	faults   []*Fault
	requests []Request
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	mux      *http.ServeMux
}

// Request is a request the stand-in received, for assertions.
type Request struct {
	At                  time.Time
	Method, Path, Query string
	Header              http.Header
	Body                []byte
}

// New returns a stand-in. SetBaseURL tells it its own URL (for run page
// URLs) once it listens.
func New(o Options) *Server {
	if o.RunTimeout == 0 {
		o.RunTimeout = 10 * time.Minute
	}
	if o.FirstRunID == 0 {
		o.FirstRunID = 1000
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{opts: o, jobs: map[int64]*jobs.Job{}, runs: map[int64]*jobs.Run{}, tokens: map[string]int64{},
		objects: map[string]*object{}, dirs: map[string]bool{"/": true}, secrets: map[string]map[string]string{},
		denied: map[int64]bool{}, members: []*member{localDeveloper}, acl: map[int64]map[string]level{},
		creds: map[string]*credential{}, nextID: 1000, lastRun: o.FirstRunID, ctx: ctx, cancel: cancel, mux: http.NewServeMux()}
	s.routes()
	return s
}

// RunIDSeed is a FirstRunID from the clock: a thousand ids for each
// millisecond since 1970, so a stand-in started later never gives an id an
// earlier one gave (unless that one gave more than a thousand for each
// millisecond between them), and the local stack's runs keep their ids,
// and their kept output, across restarts. Its ids are about 1.8e15, as
// large as Databricks' own and exact in JSON (below 2^53).
// Two seeds taken in one process are a thousand ids apart at least.
func RunIDSeed() int64 {
	for {
		last := lastSeed.Load()
		seed := max(time.Now().UnixMilli()*1000, last+1000)
		if lastSeed.CompareAndSwap(last, seed) {
			return seed
		}
	}
}

var lastSeed atomic.Int64

// newRunID returns the next run id. The caller holds s.mu.
func (s *Server) newRunID() int64 {
	s.lastRun++
	return s.lastRun
}

// SetBaseURL sets the workspace URL used in run page URLs.
func (s *Server) SetBaseURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.baseURL = strings.TrimSuffix(u, "/")
}

// Close stops running runs and waits for them; later runs are refused.
func (s *Server) Close() {
	s.mu.Lock()
	s.cancel()
	s.mu.Unlock()
	s.wg.Wait()
}

// Deny makes every call about job id answer 403 PERMISSION_DENIED.
func (s *Server) Deny(jobID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denied[jobID] = true
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Runs returns the number of runs started.
func (s *Server) Runs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.runs)
}

func (s *Server) routes() {
	s.mux.HandleFunc("POST /api/2.2/jobs/create", s.createJob)
	s.mux.HandleFunc("POST /api/2.2/jobs/reset", s.resetJob)
	s.mux.HandleFunc("GET /api/2.2/jobs/get", s.getJob)
	s.mux.HandleFunc("GET /api/2.2/jobs/list", s.listJobs)
	s.mux.HandleFunc("POST /api/2.2/jobs/run-now", s.runNow)
	s.mux.HandleFunc("GET /api/2.2/jobs/runs/get", s.getRun)
	s.mux.HandleFunc("POST /api/2.0/workspace/mkdirs", s.mkdirs)
	s.mux.HandleFunc("POST /api/2.0/workspace/import", s.importFile)
	s.mux.HandleFunc("GET /api/2.0/workspace/get-status", s.getStatus)
	s.mux.HandleFunc("POST /api/2.0/secrets/scopes/create", s.createScope)
	s.mux.HandleFunc("GET /api/2.0/secrets/scopes/list", s.listScopes)
	s.mux.HandleFunc("POST /api/2.0/secrets/put", s.putSecret)
	s.mux.HandleFunc("GET /api/2.0/permissions/jobs/{job_id}", s.permissions)
	s.mux.HandleFunc("PATCH /api/2.0/permissions/jobs/{job_id}", s.permissions)
	s.mux.HandleFunc("GET /api/2.0/preview/scim/v2/ServicePrincipals", s.servicePrincipals)
	s.mux.HandleFunc("POST /api/2.0/preview/scim/v2/ServicePrincipals", s.servicePrincipals)
	s.mux.HandleFunc("POST /api/2.1/unity-catalog/credentials", s.createCredential)
	s.mux.HandleFunc("GET /api/2.1/unity-catalog/credentials", s.listCredentials)
	s.mux.HandleFunc("GET /api/2.1/unity-catalog/credentials/{name_arg}", s.getCredential)
	s.mux.HandleFunc("PATCH /api/2.1/unity-catalog/credentials/{name_arg}", s.updateCredential)
	s.mux.HandleFunc("DELETE /api/2.1/unity-catalog/credentials/{name_arg}", s.deleteCredential)
	s.mux.HandleFunc("GET /api/2.1/unity-catalog/permissions/{securable_type}/{full_name}", s.ucPermissions)
	s.mux.HandleFunc("PATCH /api/2.1/unity-catalog/permissions/{securable_type}/{full_name}", s.ucPermissions)
	s.mux.HandleFunc("GET /api/2.1/unity-catalog/effective-permissions/{securable_type}/{full_name}", s.ucEffectivePermissions)
}

// ServeHTTP signs the caller in (see authenticate), applies injected faults, records the
// request and serves it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 10<<20))
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	s.mu.Lock()
	s.requests = append(s.requests, Request{At: time.Now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	s.mu.Unlock()
	if f := s.takeFault(r); f != nil {
		if f.apply(w, r) {
			return
		}
	}
	if r.Method == http.MethodGet && r.URL.Path == "/.well-known/databricks-config" {
		// The unauthenticated discovery document the SDK reads while it
		// resolves its configuration.
		s.mu.Lock()
		base := s.baseURL
		s.mu.Unlock()
		writeJSON(w, map[string]any{"oidc_endpoint": base + "/oidc", "workspace_id": WorkspaceID,
			"cloud": "Azure", "host_type": "WORKSPACE_HOST"})
		return
	}
	m, fail := s.authenticate(r)
	if fail != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(fail.status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error_code": fail.code, "message": fail.message})
		return
	}
	s.mux.ServeHTTP(w, withCaller(r, m))
}

// apiError is Databricks' error body.
type apiError struct {
	ErrorCode string `json:"error_code"`
	Message   string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(apiError{code, msg})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "MALFORMED_REQUEST", "Invalid JSON given in the body of the request: "+err.Error())
		return false
	}
	return true
}

func queryInt(w http.ResponseWriter, r *http.Request, name string) (int64, bool) {
	v, err := strconv.ParseInt(r.URL.Query().Get(name), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", fmt.Sprintf("Invalid value for parameter %s", name))
		return 0, false
	}
	return v, true
}
