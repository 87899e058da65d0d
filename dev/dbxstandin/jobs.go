package dbxstandin

import (
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
	settings := jobs.JobSettings{Name: req.Name, Parameters: req.Parameters, Tasks: req.Tasks, JobClusters: req.JobClusters,
		Environments: req.Environments, MaxConcurrentRuns: req.MaxConcurrentRuns, Tags: req.Tags, TimeoutSeconds: req.TimeoutSeconds,
		Queue: req.Queue, Description: req.Description}
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	s.jobs[id] = &jobs.Job{JobId: id, Settings: &settings, CreatedTime: time.Now().UnixMilli(), CreatorUserName: "nbtrace"}
	s.mu.Unlock()
	writeJSON(w, jobs.CreateResponse{JobId: id})
}

func (s *Server) resetJob(w http.ResponseWriter, r *http.Request) {
	var req jobs.ResetJob
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[req.JobId]
	if !ok {
		writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", fmt.Sprintf("Job %d does not exist.", req.JobId))
		return
	}
	settings := req.NewSettings
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
	if s.denied[id] {
		writeError(w, http.StatusForbidden, "PERMISSION_DENIED", fmt.Sprintf("User does not have permission View on job %d.", id))
		return
	}
	j, found := s.jobs[id]
	if !found {
		writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", fmt.Sprintf("Job %d does not exist.", id))
		return
	}
	writeJSON(w, j)
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []jobs.BaseJob
	for _, j := range s.jobs {
		if name == "" || strings.EqualFold(j.Settings.Name, name) {
			out = append(out, jobs.BaseJob{JobId: j.JobId, Settings: j.Settings, CreatedTime: j.CreatedTime, CreatorUserName: j.CreatorUserName})
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].JobId < out[b].JobId })
	writeJSON(w, jobs.ListJobsResponse{Jobs: out})
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
	if s.denied[req.JobId] {
		writeError(w, http.StatusForbidden, "PERMISSION_DENIED", fmt.Sprintf("User does not have permission Manage Run on job %d.", req.JobId))
		return
	}
	j, ok := s.jobs[req.JobId]
	if !ok {
		writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", fmt.Sprintf("Job %d does not exist.", req.JobId))
		return
	}
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
	s.nextID++
	runID := s.nextID
	if req.IdempotencyToken != "" {
		s.tokens[req.IdempotencyToken] = runID
	}
	run := &jobs.Run{
		RunId: runID, JobId: j.JobId, NumberInJob: runID, RunName: j.Settings.Name,
		StartTime: time.Now().UnixMilli(), Trigger: jobs.TriggerTypeOneTime, RunType: jobs.RunTypeJobRun,
		RunPageUrl: fmt.Sprintf("%s/?o=0#job/%d/run/%d", s.baseURL, j.JobId, runID),
		State:      &jobs.RunState{LifeCycleState: jobs.RunLifeCycleStateQueued, StateMessage: "Queued"},
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
	var task *jobs.Task
	if len(j.Settings.Tasks) > 0 {
		task = &j.Settings.Tasks[0]
		run.Tasks = []jobs.RunTask{{TaskKey: task.TaskKey, RunId: runID + 1, State: &jobs.RunState{LifeCycleState: jobs.RunLifeCycleStateQueued}}}
		s.nextID++
	}
	s.runs[runID] = run
	rc := RunContext{JobID: j.JobId, RunID: runID, Parameters: params, EnvVars: map[string]string{}}
	if task != nil && task.NotebookTask != nil {
		rc.NotebookPath = task.NotebookTask.NotebookPath
		rc.Notebook = s.files[rc.NotebookPath]
		rc.Folder = map[string][]byte{}
		dir := path.Dir(rc.NotebookPath) + "/"
		for p, b := range s.files {
			if rest, ok := strings.CutPrefix(p, dir); ok && !strings.Contains(rest, "/") && p != rc.NotebookPath {
				rc.Folder[rest] = b
			}
		}
		for _, jc := range j.Settings.JobClusters {
			if jc.JobClusterKey == task.JobClusterKey {
				for k, v := range jc.NewCluster.SparkEnvVars {
					rc.EnvVars[k] = s.resolveSecret(v)
				}
			}
		}
	}
	s.wg.Add(1)
	go s.execute(run, rc)
	writeJSON(w, jobs.RunNowResponse{RunId: runID, NumberInJob: runID})
}

// execute moves a run through its life cycle: queued, pending (setup),
// running (the notebook), terminating (cleanup), terminated.
func (s *Server) execute(run *jobs.Run, rc RunContext) {
	defer s.wg.Done()
	phase := func(state jobs.RunLifeCycleState, msg string, d time.Duration) time.Duration {
		s.setState(run, state, "", msg)
		start := time.Now()
		select {
		case <-time.After(d):
		case <-s.ctx.Done():
		}
		return time.Since(start)
	}
	queued := phase(jobs.RunLifeCycleStateQueued, "Queued", s.opts.QueueDelay)
	setup := phase(jobs.RunLifeCycleStatePending, "Waiting for cluster", s.opts.SetupDelay)
	s.setState(run, jobs.RunLifeCycleStateRunning, "", "In run")
	execStart := time.Now()
	var err error
	if s.opts.Runner != nil {
		ctx, cancel := context.WithTimeout(s.ctx, s.opts.RunTimeout)
		err = s.opts.Runner.Run(ctx, rc)
		cancel()
	}
	execution := time.Since(execStart)
	cleanup := phase(jobs.RunLifeCycleStateTerminating, "Terminating", s.opts.CleanupDelay)

	s.mu.Lock()
	defer s.mu.Unlock()
	run.QueueDuration, run.SetupDuration = queued.Milliseconds(), setup.Milliseconds()
	run.ExecutionDuration, run.CleanupDuration = execution.Milliseconds(), cleanup.Milliseconds()
	run.EndTime = time.Now().UnixMilli()
	run.RunDuration = run.EndTime - run.StartTime
	result, msg := jobs.RunResultStateSuccess, ""
	if err != nil {
		result, msg = jobs.RunResultStateFailed, err.Error()
	}
	run.State = &jobs.RunState{LifeCycleState: jobs.RunLifeCycleStateTerminated, ResultState: result, StateMessage: msg}
	run.Status = &jobs.RunStatus{State: jobs.RunLifecycleStateV2StateTerminated}
	for i := range run.Tasks {
		t := &run.Tasks[i]
		t.State = &jobs.RunState{LifeCycleState: jobs.RunLifeCycleStateTerminated, ResultState: result, StateMessage: msg}
		t.StartTime, t.EndTime = run.StartTime, run.EndTime
		t.QueueDuration, t.SetupDuration, t.ExecutionDuration, t.CleanupDuration = run.QueueDuration, run.SetupDuration, run.ExecutionDuration, run.CleanupDuration
		t.RunPageUrl = fmt.Sprintf("%s/?o=0#job/%d/run/%d", s.baseURL, run.JobId, t.RunId)
	}
}

func (s *Server) setState(run *jobs.Run, lc jobs.RunLifeCycleState, result jobs.RunResultState, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	run.State = &jobs.RunState{LifeCycleState: lc, ResultState: result, StateMessage: msg}
	for i := range run.Tasks {
		run.Tasks[i].State = &jobs.RunState{LifeCycleState: lc}
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
	if s.denied[run.JobId] {
		writeError(w, http.StatusForbidden, "PERMISSION_DENIED", fmt.Sprintf("User does not have permission View on job %d.", run.JobId))
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
