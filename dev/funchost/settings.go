package funchost

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/tailscale/hujson"
)

// Core Tools' rules below were read in Azure/azure-functions-core-tools at
// commit 3ee97a63 (August 2026); files are under src/Cli/func/.

// LocalSettingsFile is the settings file func start reads, in the app root.
const LocalSettingsFile = "local.settings.json"

// LocalSettings is a local.settings.json as Core Tools reads it
// (Common/AppSettingsFile.cs, the constructor).
type LocalSettings struct {
	// Path is the file read, and Exists whether it was there.
	Path   string
	Exists bool
	// Encrypted: IsEncrypted is true, or missing, which Core Tools takes as
	// true (AppSettingsFile.cs:32, `?? true`); also true for a missing
	// file (the catch, AppSettingsFile.cs:37-47).
	Encrypted bool
	// EncryptedImplicitly: IsEncrypted is missing from the file.
	EncryptedImplicitly bool
	// Values are the Values section; a null value is left out and named
	// in Nulls.
	Values map[string]string
	Nulls  []string
	// ConnectionStrings, by name: a string, or an object's ConnectionString.
	ConnectionStrings map[string]string
	// LocalHTTPPort and LocalHTTPAddress are Host.LocalHttpPort and
	// Host.LocalHttpAddress, zero when unset.
	LocalHTTPPort    int
	LocalHTTPAddress string
}

// AppRoot is the folder whose local.settings.json func start reads when it
// runs in scriptRoot: the first one from scriptRoot upward holding host.json
// or local.settings.json (Common/SecretsManager.cs AppSettingsFilePath:
// Helpers/ScriptHostHelpers.cs GetFunctionAppRootDirectory with both
// names). With --script-root dist and a staged dist, it is dist: the
// repository's own local.settings.json is never read.
func AppRoot(scriptRoot string) (string, error) {
	dir, err := filepath.Abs(scriptRoot)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		for _, name := range []string{"host.json", LocalSettingsFile} {
			if _, err := os.Stat(filepath.Join(d, name)); err == nil {
				return d, nil
			}
		}
		if filepath.Dir(d) == d {
			// ScriptHostHelpers.cs:32
			return "", fmt.Errorf("Unable to find project root. Expecting to find one of host.json, %s in project root (above %s)", LocalSettingsFile, dir)
		}
	}
}

// ReadLocalSettings reads appRoot's local.settings.json as Core Tools does:
// comments and trailing commas are allowed (Newtonsoft's JObject.Parse
// skips comments); a missing file gives no settings, marked encrypted. A
// file Core Tools cannot read is an error here; Core Tools warns "Failed
// to read app settings file" and goes on without any of its settings,
// then asks for the worker runtime and overwrites the file
// (AppSettingsFile.cs:37-47).
func ReadLocalSettings(appRoot string) (LocalSettings, error) {
	return ReadLocalSettingsFile(filepath.Join(appRoot, LocalSettingsFile))
}

// ReadLocalSettingsFile reads a settings file of local.settings.json's
// form wherever it is, as ReadLocalSettings does.
func ReadLocalSettingsFile(path string) (LocalSettings, error) {
	s := LocalSettings{Path: path, Encrypted: true, EncryptedImplicitly: true,
		Values: map[string]string{}, ConnectionStrings: map[string]string{}}
	raw, err := os.ReadFile(s.Path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	s.Exists = true
	unreadable := func(err error) (LocalSettings, error) {
		return s, fmt.Errorf("Failed to read app settings file at '%s'. Ensure it is a valid JSON file. %v (Core Tools would then ignore all of it)", s.Path, err)
	}
	std, err := hujson.Standardize(raw)
	if err != nil {
		return unreadable(err)
	}
	var f struct {
		IsEncrypted       *bool
		Values            map[string]json.RawMessage
		ConnectionStrings map[string]json.RawMessage
		Host              struct {
			LocalHttpPort    int
			LocalHttpAddress string
		}
	}
	dec := json.NewDecoder(bytes.NewReader(std))
	if err := dec.Decode(&f); err != nil {
		return unreadable(err)
	}
	if f.IsEncrypted != nil {
		s.Encrypted, s.EncryptedImplicitly = *f.IsEncrypted, false
	}
	s.LocalHTTPPort, s.LocalHTTPAddress = f.Host.LocalHttpPort, f.Host.LocalHttpAddress
	for k, v := range f.Values {
		str, null, err := settingString(v)
		switch {
		case err != nil:
			return unreadable(fmt.Errorf("Values.%s: %w", k, err))
		case null:
			s.Nulls = append(s.Nulls, k)
		default:
			s.Values[k] = str
		}
	}
	sort.Strings(s.Nulls)
	for k, v := range f.ConnectionStrings {
		str, _, err := settingString(v)
		if err != nil {
			var obj struct{ ConnectionString string }
			if json.Unmarshal(v, &obj) != nil {
				return unreadable(fmt.Errorf("ConnectionStrings.%s: %w", k, err))
			}
			str = obj.ConnectionString
		}
		s.ConnectionStrings[k] = str
	}
	return s, nil
}

// settingString converts a Values entry as Newtonsoft's ToObject<Dictionary<string,
// string>> does: strings as they are, numbers as written, booleans as
// True/False, null as null; objects and arrays fail.
func settingString(v json.RawMessage) (s string, null bool, err error) {
	var x any
	if err := json.Unmarshal(v, &x); err != nil {
		return "", false, err
	}
	switch x := x.(type) {
	case nil:
		return "", true, nil
	case string:
		return x, false, nil
	case bool:
		if x {
			return "True", false, nil
		}
		return "False", false, nil
	case float64:
		return string(v), false, nil
	default:
		return "", false, fmt.Errorf("%s is not a string", v)
	}
}

// Plain returns the settings' values, as AppSettingsFile.GetValues does
// (AppSettingsFile.cs:105-122). Encrypted values are protected with this
// machine's ASP.NET Core Data Protection keys, which only Core Tools can
// read: with any non-empty value in an encrypted file, it is an error.
func (s LocalSettings) Plain() (map[string]string, error) {
	if s.Encrypted {
		for _, v := range s.Values {
			if v == "" {
				continue
			}
			if s.EncryptedImplicitly {
				// Plain values, read as encrypted: Core Tools fails with this
				// message (AppSettingsFile.cs:115).
				return nil, fmt.Errorf("%s: Failed to decrypt settings. Encrypted settings only be edited through 'func settings add'. "+
					"(the file has no \"IsEncrypted\": false, so Core Tools takes its values as encrypted: add it)", s.Path)
			}
			return nil, fmt.Errorf("%s is encrypted (\"IsEncrypted\": true): only Core Tools, with this machine's keys, can read it; keep a plain copy (\"IsEncrypted\": false) for the host stand-in", s.Path)
		}
	}
	return s.Values, nil
}

// HasWorkerRuntime reports whether the file names FUNCTIONS_WORKER_RUNTIME
// at all, whatever its value: what stops Core Tools from asking for it
// (StartHostAction.cs:947-953, EnsureWorkerRuntimeIsSet: the key,
// compared case-insensitively).
func (s LocalSettings) HasWorkerRuntime() bool {
	for k := range s.Values {
		if strings.EqualFold(k, workerRuntime) {
			return true
		}
	}
	return slices.ContainsFunc(s.Nulls, func(k string) bool { return strings.EqualFold(k, workerRuntime) })
}

// CheckForCustomHandler says what stops func start from running this app,
// a custom handler, with these settings: a file Core Tools cannot read, a
// missing IsEncrypted, no FUNCTIONS_WORKER_RUNTIME (Core Tools asks for
// one), or one other than custom. A file Core Tools wrote and encrypted
// itself passes unread (its worker runtime, chosen at the prompt, is
// unknown). It is the check for a folder func start runs.
func (s LocalSettings) CheckForCustomHandler() error {
	if !s.Exists {
		return fmt.Errorf("%s is missing: Core Tools would ask for the worker runtime, write only that there, and the handler would start without its settings", s.Path)
	}
	if s.Encrypted && !s.EncryptedImplicitly {
		return nil
	}
	values, err := s.Plain()
	if err != nil {
		return err
	}
	if !s.HasWorkerRuntime() {
		return fmt.Errorf("%s has no FUNCTIONS_WORKER_RUNTIME: Core Tools would ask for the worker runtime and write it there; set \"FUNCTIONS_WORKER_RUNTIME\": \"custom\"", s.Path)
	}
	return checkWorkerRuntime(s.Path, values)
}

// checkWorkerRuntime checks the worker runtime values name, once Core
// Tools has stopped asking for it: an empty or null one is no runtime
// ("Worker runtime cannot be 'None'", Helpers/GlobalCoreToolsSettings.cs:46-50),
// and this app, a custom handler, needs custom (the stand-in's rule:
// another runtime would start another worker, or, for go, build the
// folder as a Go module).
func checkWorkerRuntime(where string, values map[string]string) error {
	for k, v := range values {
		if !strings.EqualFold(k, workerRuntime) {
			continue
		}
		if v == "" {
			return fmt.Errorf("%s: FUNCTIONS_WORKER_RUNTIME is empty: Worker runtime cannot be 'None'. Please set a valid runtime (custom)", where)
		}
		if !strings.EqualFold(v, "custom") {
			return fmt.Errorf("%s: FUNCTIONS_WORKER_RUNTIME is %q; this app is a custom handler (host.json customHandler): set it to custom", where, v)
		}
		return nil
	}
	return fmt.Errorf("%s: FUNCTIONS_WORKER_RUNTIME is null: Worker runtime cannot be 'None'. Please set a valid runtime (custom)", where)
}

const workerRuntime = "FUNCTIONS_WORKER_RUNTIME"
