package dbxstandin

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"maps"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/databricks/databricks-sdk-go/service/workspace"
)

// object is a workspace notebook or file.
type object struct {
	id       int64
	notebook bool
	content  []byte
	created  int64
	modified int64
}

func (s *Server) mkdirs(w http.ResponseWriter, r *http.Request) {
	var req workspace.Mkdirs
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := path.Clean(req.Path); p != "/" && p != "."; p = path.Dir(p) {
		if _, taken := s.objects[p]; taken {
			writeError(w, http.StatusBadRequest, "RESOURCE_ALREADY_EXISTS", fmt.Sprintf("Path (%s) already exists.", p))
			return
		}
		s.dirs[p] = true
	}
	writeJSON(w, struct{}{})
}

// notebookSource is the first line that makes AUTO import a source file as
// a notebook.
var notebookSource = regexp.MustCompile(`^(# |// |-- )Databricks notebook source\r?\n`)

// importFile follows the Workspace API's import
// (https://docs.databricks.com/api/workspace/workspace/import and the
// SDK's workspace.Import):
//
//   - JUPYTER makes a notebook; SOURCE makes a notebook and needs the
//     language; RAW stores a workspace file as it is (what Terraform's
//     databricks_workspace_file uses since #4200);
//   - AUTO makes a notebook of an .ipynb, or of a source file whose first
//     line is "# Databricks notebook source", dropping the extension, and
//     a workspace file of anything else; over an existing file it fails
//     even with overwrite ("Node named 'file.txt already exists",
//     databricks/cli#3386);
//   - without overwrite an existing path is RESOURCE_ALREADY_EXISTS; a
//     missing parent folder is 404 RESOURCE_DOES_NOT_EXIST ("The parent
//     folder (/foo) does not exist.", terraform-provider-databricks
//     TestResourceNotebookCreate_DirectoryDoesntExist); a notebook is never
//     replaced by a file or a file by a notebook.
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
	var notebook bool
	switch req.Format {
	case workspace.ImportFormatJupyter:
		notebook = true
	case workspace.ImportFormatSource:
		if req.Language == "" {
			writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "To import a single file as SOURCE, the language must be set.")
			return
		}
		notebook = true
	case workspace.ImportFormatRaw:
	case workspace.ImportFormatAuto, "":
		ext := path.Ext(p)
		notebook = ext == ".ipynb" || (ext == ".py" || ext == ".sql" || ext == ".scala" || ext == ".r") && notebookSource.Match(content)
		if notebook {
			p = strings.TrimSuffix(p, ext)
		}
	default:
		writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", fmt.Sprintf("The stand-in does not import format %s.", req.Format))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dirs[path.Dir(p)] {
		writeError(w, http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST", fmt.Sprintf("The parent folder (%s) does not exist.", path.Dir(p)))
		return
	}
	old, exists := s.objects[p]
	switch {
	case s.dirs[p]:
		writeError(w, http.StatusBadRequest, "RESOURCE_ALREADY_EXISTS", fmt.Sprintf("Path (%s) already exists.", p))
		return
	case exists && !req.Overwrite:
		writeError(w, http.StatusBadRequest, "RESOURCE_ALREADY_EXISTS", fmt.Sprintf("%s already exists.", p))
		return
	case exists && !old.notebook && (req.Format == workspace.ImportFormatAuto || req.Format == ""):
		writeError(w, http.StatusBadRequest, "RESOURCE_ALREADY_EXISTS", fmt.Sprintf("Node named '%s already exists", path.Base(p)))
		return
	case exists && old.notebook != notebook:
		writeError(w, http.StatusBadRequest, "RESOURCE_ALREADY_EXISTS", fmt.Sprintf("%s already exists as a %s.", p, kindOf(old)))
		return
	}
	now := time.Now().UnixMilli()
	o := &object{notebook: notebook, content: bytes.Clone(content), created: now, modified: now}
	if exists {
		o.id, o.created = old.id, old.created
	} else {
		s.nextID++
		o.id = s.nextID
	}
	s.objects[p] = o
	writeJSON(w, struct{}{})
}

func kindOf(o *object) string {
	if o.notebook {
		return "notebook"
	}
	return "file"
}

// getStatus answers an object's ObjectInfo: a notebook has its language
// (always PYTHON for Jupyter notebooks), a file its size and times, as
// workspace.ObjectInfo documents; a missing path is 404
// RESOURCE_DOES_NOT_EXIST "Path (…) doesn't exist.".
func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) {
	p := path.Clean(r.URL.Query().Get("path"))
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[p]
	switch {
	case ok && o.notebook:
		writeJSON(w, workspace.ObjectInfo{Path: p, ObjectType: workspace.ObjectTypeNotebook, Language: workspace.LanguagePython,
			ObjectId: o.id, ResourceId: fmt.Sprint(o.id)})
	case ok:
		writeJSON(w, workspace.ObjectInfo{Path: p, ObjectType: workspace.ObjectTypeFile, ObjectId: o.id, ResourceId: fmt.Sprint(o.id),
			Size: int64(len(o.content)), CreatedAt: o.created, ModifiedAt: o.modified, ForceSendFields: []string{"Size"}})
	case s.dirs[p]:
		writeJSON(w, workspace.ObjectInfo{Path: p, ObjectType: workspace.ObjectTypeDirectory})
	default:
		writeError(w, http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST", fmt.Sprintf("Path (%s) doesn't exist.", p))
	}
}

// File returns an imported notebook's or file's content.
func (s *Server) File(p string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o := s.objects[path.Clean(p)]; o != nil {
		return o.content
	}
	return nil
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

var secretRef = regexp.MustCompile(`\{\{secrets/([^/}]+)/([^}]+)\}\}`)

// resolveSecret resolves {{secrets/scope/key}} references in a cluster's
// environment variable. A reference to a secret that does not exist makes
// the cluster fail to launch
// (https://docs.databricks.com/security/secrets/secrets-spark-conf-env-var.html):
// problem then says which. The caller holds s.mu.
func (s *Server) resolveSecret(v string) (value, problem string) {
	value = secretRef.ReplaceAllStringFunc(v, func(ref string) string {
		m := secretRef.FindStringSubmatch(ref)
		val, ok := s.secrets[m[1]][m[2]]
		if !ok && problem == "" {
			problem = fmt.Sprintf("Secret does not exist with scope: %s and key: %s", m[1], m[2])
		}
		return val
	})
	return value, problem
}

// secretsCopy is the workspace's secrets. The caller holds s.mu.
func (s *Server) secretsCopy() map[string]map[string]string {
	out := map[string]map[string]string{}
	for scope, kv := range s.secrets {
		out[scope] = maps.Clone(kv)
	}
	return out
}
