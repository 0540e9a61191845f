package api

import (
	"fmt"
	"net/http"

	"github.com/stowage/stowage/hwmgr/node"
)

// JobBody is the JSON body of POST /v1/burnin and POST /v1/erase.
type JobBody struct {
	Drives []node.JobDrive `json:"drives"`
	Reason string          `json:"reason,omitempty"`
	// Burn-in only.
	Passes   int     `json:"passes,omitempty"`
	Share    float64 `json:"share,omitempty"`
	SelfTest string  `json:"self_test,omitempty"`
	// Erase only.
	Method string `json:"method,omitempty"`
	Retire bool   `json:"retire,omitempty"`
}

// JobList is the body of GET /v1/jobs and of a started job request.
type JobList struct {
	Jobs []node.Job `json:"jobs"`
}

func (s *Server) writeErr(w http.ResponseWriter, r *http.Request, what string, err error) {
	status, slug := actionStatus(err)
	if status >= 500 {
		s.log.Error(what+" failed", "path", r.URL.Path, "err", err)
	}
	WriteProblem(w, r, status, slug, err.Error())
}

func (s *Server) startJob(k node.JobKind) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body JobBody
		if !s.decodeBody(w, r, &body) {
			return
		}
		if len(body.Drives) == 0 {
			WriteProblem(w, r, http.StatusUnprocessableEntity, ProbBadRequest, "drives: name at least one drive")
			return
		}
		jobs, err := s.cfg.Jobs.Start(r.Context(), node.JobRequest{Kind: k, Drives: body.Drives, Reason: body.Reason,
			Actor: "api:" + RoleOf(r.Context()).String(), Passes: body.Passes, Share: body.Share, SelfTest: body.SelfTest,
			Method: body.Method, Retire: body.Retire})
		if err != nil {
			s.writeErr(w, r, string(k), err)
			return
		}
		s.log.Info("job started", "kind", k, "drives", len(jobs), "remote", r.RemoteAddr)
		writeJSON(w, http.StatusAccepted, JobList{Jobs: jobs})
	})
}

func (s *Server) jobs(w http.ResponseWriter, r *http.Request) {
	out := JobList{Jobs: []node.Job{}}
	for _, d := range s.cfg.Node.Inventory().Drives {
		if d.Job != nil {
			out.Jobs = append(out.Jobs, *d.Job)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) driveJob(k node.JobKind) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		d, ok := s.cfg.Node.Drive(id)
		if !ok {
			WriteProblem(w, r, http.StatusNotFound, ProbDriveNotFound, fmt.Sprintf("no drive %q (give its ID, serial, WWN or kernel name)", id))
			return
		}
		if d.Job == nil || d.Job.Kind != k {
			WriteProblem(w, r, http.StatusNotFound, ProbNoJob, fmt.Sprintf("drive %s: no %s since the daemon started", d.ID, k))
			return
		}
		writeJSON(w, http.StatusOK, d.Job)
	})
}

func (s *Server) cancelJob(k node.JobKind) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j, err := s.cfg.Jobs.Cancel(r.Context(), r.PathValue("id"), k, "api:"+RoleOf(r.Context()).String())
		if err != nil {
			s.writeErr(w, r, "cancel", err)
			return
		}
		writeJSON(w, http.StatusAccepted, j)
	})
}

func (s *Server) jobReport(k node.JobKind) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, err := s.cfg.Jobs.Report(r.PathValue("id"), k)
		if err != nil {
			s.writeErr(w, r, "report", err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(raw)
	})
}
