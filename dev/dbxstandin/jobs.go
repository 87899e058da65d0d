package dbxstandin

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/databricks/databricks-sdk-go/service/jobs"
)

func (s *Server) createJob(w http.ResponseWriter, r *http.Request) {
	var req jobs.CreateJob
	if !decode(w, r, &req) {
		return
	}
	// Jobs API 2.1 and later: "this value is always set to MULTI_TASK"
	// (jobs.JobSettings.Format).
	settings := jobs.JobSettings{Name: req.Name, Parameters: req.Parameters, Tasks: req.Tasks, JobClusters: req.JobClusters,
		Environments: req.Environments, MaxConcurrentRuns: req.MaxConcurrentRuns, Tags: req.Tags, TimeoutSeconds: req.TimeoutSeconds,
		Queue: req.Queue, Description: req.Description, Format: jobs.FormatMultiTask, PerformanceTarget: req.PerformanceTarget}
	if problem := settingsProblem(settings); problem != "" {
		writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", problem)
		return
	}
	m := caller(r)
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	// The creator owns the job, and a job without run_as runs as its owner
	// (jobs.Job.RunAsUserName, Jobs API 2.2: "set to the creator of the job
	// if job access control is disabled or to the user with the is_owner
	// permission if job access control is enabled").
	s.jobs[id] = &jobs.Job{JobId: id, Settings: &settings, CreatedTime: time.Now().UnixMilli(), CreatorUserName: m.Name,
		RunAsUserName: m.Name}
	s.acl[id] = map[string]level{m.Name: isOwner}
	s.mu.Unlock()
	writeJSON(w, jobs.CreateResponse{JobId: id})
}

// job finds a job the caller holds need on, or writes Databricks' answer
// and returns nil. The caller holds s.mu.
func (s *Server) job(w http.ResponseWriter, r *http.Request, id int64, need level) *jobs.Job {
	j, ok := s.jobs[id]
	if !ok {
		writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", fmt.Sprintf("Job %d does not exist.", id))
		return nil
	}
	if !s.allowed(w, r, id, need) {
		return nil
	}
	return j
}

func (s *Server) resetJob(w http.ResponseWriter, r *http.Request) {
	var req jobs.ResetJob
	if !decode(w, r, &req) {
		return
	}
	if problem := settingsProblem(req.NewSettings); problem != "" {
		writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", problem)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.job(w, r, req.JobId, canManage)
	if j == nil {
		return
	}
	settings := req.NewSettings
	settings.Format = jobs.FormatMultiTask
	j.Settings = &settings
	writeJSON(w, struct{}{})
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	id, ok := queryInt(w, r, "job_id")
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if j := s.job(w, r, id, canView); j != nil {
		writeJSON(w, j)
	}
}

// listJobs lists the jobs the caller may view.
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []jobs.BaseJob
	for _, j := range s.jobs {
		if (name == "" || strings.EqualFold(j.Settings.Name, name)) && s.can(caller(r), j.JobId, canView) {
			out = append(out, jobs.BaseJob{JobId: j.JobId, Settings: j.Settings, CreatedTime: j.CreatedTime, CreatorUserName: j.CreatorUserName})
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].JobId < out[b].JobId })
	writeJSON(w, jobs.ListJobsResponse{Jobs: out})
}

// runPageURL is a run's page, as Azure Databricks writes it: the workspace
// id in ?o= (https://adb-<id>.<n>.azuredatabricks.net/?o=<id>#job/<job>/run/<run>).
func (s *Server) runPageURL(job, run int64) string {
	return fmt.Sprintf("%s/?o=%s#job/%d/run/%d", s.baseURL, WorkspaceID, job, run)
}

func (s *Server) runNow(w http.ResponseWriter, r *http.Request) {
	var req jobs.RunNow
	if !decode(w, r, &req) {
		return
	}
	if len(req.IdempotencyToken) > 64 {
		writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "The idempotency token must be at most 64 characters.")
		return
	}
	if b, _ := json.Marshal(req.JobParameters); len(b) > MaxParameterBytes {
		writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", fmt.Sprintf("Job parameters must be less than %d bytes.", MaxParameterBytes))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		writeError(w, http.StatusServiceUnavailable, "TEMPORARILY_UNAVAILABLE", "The stand-in is shutting down.")
		return
	}
	j := s.job(w, r, req.JobId, canManageRun)
	if j == nil {
		return
	}
	// "If a run with the provided token already exists, the request does
	// not create a new run but returns the ID of the existing run instead"
	// (jobs.RunNow.IdempotencyToken). The documentation scopes tokens to
	// nothing narrower than the workspace and names no expiry, so a token
	// is remembered for the workspace's life, whatever job it was used for
	// (as Databricks' own test server, databricks/cli
	// libs/testserver/fake_workspace.go, keys them).
	if req.IdempotencyToken != "" {
		if id, seen := s.tokens[req.IdempotencyToken]; seen {
			writeJSON(w, jobs.RunNowResponse{RunId: id, NumberInJob: id})
			return
		}
	}
	defined := map[string]string{}
	for _, p := range j.Settings.Parameters {
		defined[p.Name] = p.Default
	}
	for name := range req.JobParameters {
		if _, ok := defined[name]; !ok {
			writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", fmt.Sprintf("Job parameter %q is not defined in the job.", name))
			return
		}
	}
	runID := s.newRunID()
	if req.IdempotencyToken != "" {
		s.tokens[req.IdempotencyToken] = runID
	}
	run := &jobs.Run{
		RunId: runID, JobId: j.JobId, NumberInJob: runID, RunName: j.Settings.Name,
		StartTime: time.Now().UnixMilli(), Trigger: jobs.TriggerTypeOneTime, RunType: jobs.RunTypeJobRun,
		RunPageUrl: s.runPageURL(j.JobId, runID),
	}
	resolve := func(v string) string {
		v = strings.ReplaceAll(v, "{{job.id}}", fmt.Sprint(j.JobId))
		return strings.ReplaceAll(v, "{{job.run_id}}", fmt.Sprint(runID))
	}
	params := map[string]string{}
	for _, p := range j.Settings.Parameters {
		jp := jobs.JobParameter{Name: p.Name, Default: p.Default}
		if v, given := req.JobParameters[p.Name]; given {
			jp.Value = resolve(v)
			jp.ForceSendFields = []string{"Value"}
		} else {
			jp.Value = resolve(p.Default)
		}
		params[p.Name] = jp.Value
		run.JobParameters = append(run.JobParameters, jp)
	}
	rc := RunContext{JobID: j.JobId, RunID: runID, Parameters: params, EnvVars: map[string]string{}, Secrets: s.secretsCopy(),
		ServiceCredentials: s.serviceCredentialsFor(cmp.Or(j.RunAsUserName, j.CreatorUserName))}
	var launchErr string
	if len(j.Settings.Tasks) > 0 {
		task := &j.Settings.Tasks[0]
		rc.Serverless = serverless(*task)
		taskRunID := s.newRunID()
		run.Tasks = []jobs.RunTask{{TaskKey: task.TaskKey, RunId: taskRunID, RunPageUrl: s.runPageURL(j.JobId, taskRunID)}}
		if task.NotebookTask != nil {
			rc.NotebookPath = task.NotebookTask.NotebookPath
			if o := s.objects[rc.NotebookPath]; o != nil && o.notebook {
				rc.Notebook = o.content
			}
			rc.Folder = s.folderOf(rc.NotebookPath)
		}
		for _, jc := range j.Settings.JobClusters {
			if jc.JobClusterKey == task.JobClusterKey && jc.NewCluster != nil {
				for k, v := range jc.NewCluster.SparkEnvVars {
					val, problem := s.resolveSecret(v)
					if problem != "" && launchErr == "" {
						launchErr = problem
					}
					rc.EnvVars[k] = val
				}
			}
		}
	}
	applyState(run, jobs.RunLifeCycleStateQueued, jobs.RunLifecycleStateV2StateQueued, "Queued")
	s.runs[runID] = run
	s.wg.Add(1)
	go s.execute(run, rc, launchErr)
	writeJSON(w, jobs.RunNowResponse{RunId: runID, NumberInJob: runID})
}

// clusterID names the run's job cluster in messages.
func clusterID(run *jobs.Run) string {
	return fmt.Sprintf("%s-%06d-nbtr%04d", time.UnixMilli(run.StartTime).UTC().Format("0102"), run.RunId%1000000, run.RunId%10000)
}

// execute moves a run through its life cycle: queued, pending (cluster
// set-up), running (the notebook), terminating (cleanup), terminated. A
// cluster that cannot launch (launchErr) ends the run in INTERNAL_ERROR
// after set-up, with the task never run.
func (s *Server) execute(run *jobs.Run, rc RunContext, launchErr string) {
	defer s.wg.Done()
	wait := func(d time.Duration) time.Duration {
		start := time.Now()
		select {
		case <-time.After(d):
		case <-s.ctx.Done():
		}
		return time.Since(start)
	}
	queued := wait(s.opts.QueueDelay)
	s.setState(run, jobs.RunLifeCycleStatePending, jobs.RunLifecycleStateV2StatePending, "Waiting for cluster")
	taskStart := time.Now()
	setupDelay := s.opts.SetupDelay
	if rc.Serverless {
		setupDelay = s.opts.ServerlessSetupDelay
	}
	setup := wait(setupDelay)
	var execution, cleanup time.Duration
	result, msg := jobs.RunResultStateSuccess, ""
	var details *jobs.TerminationDetails
	if launchErr != "" {
		// A cluster that fails to launch: "Cluster … was terminated while
		// waiting on it to be ready: Cluster … is in unexpected state
		// Terminated: <CODE>(<TYPE>): …" (Jobs' message for launch failures);
		// a missing secret is INVALID_ARGUMENT, a client error
		// (databricks/sdk-js clusters model, SECRET_RESOLUTION_ERROR's note).
		id := clusterID(run)
		msg = fmt.Sprintf("Task %s failed with message: Cluster %s was terminated while waiting on it to be ready: Cluster %s is in unexpected state Terminated: INVALID_ARGUMENT(CLIENT_ERROR): databricks_error_message:%s.",
			run.Tasks[0].TaskKey, id, id, launchErr)
		result = jobs.RunResultStateFailed
		details = &jobs.TerminationDetails{Code: jobs.TerminationCodeCodeClusterError, Type: jobs.TerminationTypeTypeClientError, Message: msg}
	} else {
		s.setState(run, jobs.RunLifeCycleStateRunning, jobs.RunLifecycleStateV2StateRunning, "In run")
		execStart := time.Now()
		var err error
		if s.opts.Runner != nil {
			ctx, cancel := context.WithTimeout(s.ctx, s.opts.RunTimeout)
			err = s.opts.Runner.Run(ctx, rc)
			cancel()
		}
		execution = time.Since(execStart)
		s.setState(run, jobs.RunLifeCycleStateTerminating, jobs.RunLifecycleStateV2StateTerminating, "Terminating")
		cleanup = wait(s.opts.CleanupDelay)
		details = &jobs.TerminationDetails{Code: jobs.TerminationCodeCodeSuccess, Type: jobs.TerminationTypeTypeSuccess}
		if err != nil {
			result, msg = jobs.RunResultStateFailed, err.Error()
			details = &jobs.TerminationDetails{Code: jobs.TerminationCodeCodeRunExecutionError, Type: jobs.TerminationTypeTypeClientError, Message: msg}
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	end := time.Now()
	// Jobs API 2.2 answers every run in the multi-task format: the run's
	// own setup, execution and cleanup durations are 0 ("The
	// setup_duration field is set to 0 for multitask job runs. The total
	// duration of a multitask job run is the value of the run_duration
	// field", jobs.Run); the figures are on the tasks.
	run.QueueDuration = queued.Milliseconds()
	run.EndTime = end.UnixMilli()
	run.RunDuration = run.EndTime - run.StartTime
	lc := jobs.RunLifeCycleStateTerminated
	if launchErr != "" {
		lc = jobs.RunLifeCycleStateInternalError
	}
	run.State = &jobs.RunState{LifeCycleState: lc, ResultState: result, StateMessage: msg}
	run.Status = &jobs.RunStatus{State: jobs.RunLifecycleStateV2StateTerminated, TerminationDetails: details}
	for i := range run.Tasks {
		t := &run.Tasks[i]
		t.State = &jobs.RunState{LifeCycleState: lc, ResultState: result, StateMessage: msg}
		t.Status = run.Status
		t.StartTime, t.EndTime = taskStart.UnixMilli(), run.EndTime
		t.QueueDuration = run.QueueDuration
		t.SetupDuration, t.ExecutionDuration, t.CleanupDuration = setup.Milliseconds(), execution.Milliseconds(), cleanup.Milliseconds()
		t.RunDuration = t.EndTime - t.StartTime
		t.ForceSendFields = []string{"ExecutionDuration", "CleanupDuration"}
	}
}

// setState sets a run's and its tasks' state, old and new (RunStatus)
// forms, before it ends.
func (s *Server) setState(run *jobs.Run, lc jobs.RunLifeCycleState, v2 jobs.RunLifecycleStateV2State, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	applyState(run, lc, v2, msg)
}

// applyState is setState for a caller that holds s.mu.
func applyState(run *jobs.Run, lc jobs.RunLifeCycleState, v2 jobs.RunLifecycleStateV2State, msg string) {
	run.State = &jobs.RunState{LifeCycleState: lc, StateMessage: msg}
	run.Status = &jobs.RunStatus{State: v2}
	for i := range run.Tasks {
		run.Tasks[i].State = &jobs.RunState{LifeCycleState: lc}
		run.Tasks[i].Status = run.Status
	}
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	id, ok := queryInt(w, r, "run_id")
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	run, found := s.runs[id]
	if !found {
		writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", fmt.Sprintf("Run %d does not exist.", id))
		return
	}
	if !s.allowed(w, r, run.JobId, canView) {
		return
	}
	b, err := json.Marshal(run)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "INTERNAL_ERROR", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// folderOf holds the workspace files beside a notebook, by name: what the
// notebook can import. The caller holds s.mu.
func (s *Server) folderOf(notebook string) map[string][]byte {
	out := map[string][]byte{}
	dir := path.Dir(notebook) + "/"
	for p, o := range s.objects {
		if rest, ok := strings.CutPrefix(p, dir); ok && !strings.Contains(rest, "/") && !o.notebook {
			out[rest] = o.content
		}
	}
	return out
}
