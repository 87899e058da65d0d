// Package runs is the runs function: GET /api/runs/{runId} answers the
// state of a run of the notebook job, and puts a finished run's real
// timings into its trace (once per run).
package runs

import (
	"errors"
	"net/http"
	"regexp"
	"strconv"

	"github.com/nbtrace/nbtrace/functions/api"
	"github.com/nbtrace/nbtrace/functions/jobrun"
)

// New builds the runs function.
func New(_ api.Env, runs jobrun.Runs, rec *jobrun.Recorder) (http.Handler, error) {
	return api.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		id, err := strconv.ParseInt(r.PathValue("runId"), 10, 64)
		if err != nil || id <= 0 {
			return &api.Error{Code: api.EINVALID, Message: "runId must be a positive whole number", Fields: map[string]string{"runId": "must be a positive whole number"}}
		}
		run, err := runs.GetRun(r.Context(), id)
		if err != nil {
			if isMissingRun(err) || isOtherJobsRun(err, runs.JobID()) {
				return api.Errorf(api.ENOTFOUND, "there is no run %d of the notebook job", id)
			}
			return err
		}
		// Only runs of the configured job are shown: a function key is no
		// licence to read every run in the workspace.
		if run.JobId != runs.JobID() {
			return api.Errorf(api.ENOTFOUND, "there is no run %d of the notebook job", id)
		}
		if rec != nil {
			rec.Record(run)
		}
		api.Encode(w, http.StatusOK, jobrun.StatusOf(run))
		return nil
	}), nil
}

// isMissingRun reports a Databricks answer for a run id that does not
// exist: RESOURCE_DOES_NOT_EXIST, or INVALID_PARAMETER_VALUE as runs/get
// answers for unknown ids.
func isMissingRun(err error) bool {
	var e *api.Error
	if !errors.As(err, &e) || e.Code != api.EDEPENDENCY {
		return false
	}
	code, _ := e.Extensions["databricksErrorCode"].(string)
	return code == "RESOURCE_DOES_NOT_EXIST" || code == "INVALID_PARAMETER_VALUE"
}

// deniedJob reads the job of Databricks' PERMISSION_DENIED answer ("User
// … does not have View or Admin or Manage Run or Owner permissions on job
// 123").
var deniedJob = regexp.MustCompile(`permissions on job (\d+)`)

// isOtherJobsRun reports Databricks refusing to show a run of a job other
// than the configured one: the app's identity holds rights on its own job
// only (CAN_MANAGE_RUN), so a run of any other job is, to the caller, no
// run of the notebook job. A refusal about the configured job itself stays
// an error: the app has lost its grant.
func isOtherJobsRun(err error, jobID int64) bool {
	var e *api.Error
	if !errors.As(err, &e) || e.Code != api.EDEPENDENCY || e.Extensions["databricksErrorCode"] != "PERMISSION_DENIED" {
		return false
	}
	m := deniedJob.FindStringSubmatch(e.Message)
	return m != nil && m[1] != strconv.FormatInt(jobID, 10)
}
