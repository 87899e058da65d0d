package dbxstandin

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"path"
	"regexp"
	"strings"

	"github.com/databricks/databricks-sdk-go/service/workspace"
)

func (s *Server) mkdirs(w http.ResponseWriter, r *http.Request) {
	var req workspace.Mkdirs
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := path.Clean(req.Path); p != "/" && p != "."; p = path.Dir(p) {
		s.dirs[p] = true
	}
	writeJSON(w, struct{}{})
}

func (s *Server) importFile(w http.ResponseWriter, r *http.Request) {
	var req workspace.Import
	if !decode(w, r, &req) {
		return
	}
	content, err := base64.StdEncoding.DecodeString(req.Content)
	if err != nil {
		writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "The content must be base64 encoded.")
		return
	}
	p := path.Clean(req.Path)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dirs[path.Dir(p)] {
		writeError(w, http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST", fmt.Sprintf("The parent folder (%s) does not exist.", path.Dir(p)))
		return
	}
	if _, exists := s.files[p]; exists && !req.Overwrite {
		writeError(w, http.StatusBadRequest, "RESOURCE_ALREADY_EXISTS", fmt.Sprintf("%s already exists.", p))
		return
	}
	s.files[p] = content
	writeJSON(w, struct{}{})
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) {
	p := path.Clean(r.URL.Query().Get("path"))
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.files[p] != nil:
		writeJSON(w, workspace.ObjectInfo{Path: p, ObjectType: workspace.ObjectTypeNotebook, Language: workspace.LanguagePython})
	case s.dirs[p]:
		writeJSON(w, workspace.ObjectInfo{Path: p, ObjectType: workspace.ObjectTypeDirectory})
	default:
		writeError(w, http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST", fmt.Sprintf("Path (%s) doesn't exist.", p))
	}
}

// File returns an imported file's content.
func (s *Server) File(p string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files[path.Clean(p)]
}

func (s *Server) createScope(w http.ResponseWriter, r *http.Request) {
	var req workspace.CreateScope
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.secrets[req.Scope]; ok {
		writeError(w, http.StatusBadRequest, "RESOURCE_ALREADY_EXISTS", fmt.Sprintf("Scope %s already exists!", req.Scope))
		return
	}
	s.secrets[req.Scope] = map[string]string{}
	writeJSON(w, struct{}{})
}

func (s *Server) listScopes(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out workspace.ListScopesResponse
	for name := range s.secrets {
		out.Scopes = append(out.Scopes, workspace.SecretScope{Name: name, BackendType: workspace.ScopeBackendTypeDatabricks})
	}
	writeJSON(w, out)
}

func (s *Server) putSecret(w http.ResponseWriter, r *http.Request) {
	var req workspace.PutSecret
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	scope, ok := s.secrets[req.Scope]
	if !ok {
		writeError(w, http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST", fmt.Sprintf("Scope %s does not exist!", req.Scope))
		return
	}
	scope[req.Key] = req.StringValue
	writeJSON(w, struct{}{})
}

var secretRef = regexp.MustCompile(`^\{\{secrets/([^/]+)/([^}]+)\}\}$`)

// resolveSecret resolves a {{secrets/scope/key}} reference, as clusters
// do for spark_env_vars. The caller holds s.mu.
func (s *Server) resolveSecret(v string) string {
	m := secretRef.FindStringSubmatch(strings.TrimSpace(v))
	if m == nil {
		return v
	}
	return s.secrets[m[1]][m[2]]
}
