package stage

import (
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/nbtrace/nbtrace/dev/funchost"
	"github.com/nbtrace/nbtrace/handler/manifest"
)

// Check verifies a deployment package against what the host needs: a valid
// host.json at the root; its defaultExecutablePath a relative path to a
// regular, executable file inside the folder (the host resolves it against
// the app root) built for goos/goarch (no check of the format when goos is
// empty); every folder with a function.json a function the handler can
// serve; nothing else but those. A local.settings.json is refused: it
// belongs to a folder for func start (CheckLocal), and would be uploaded
// with the package, tokens and all. Each error names the folder and what
// to run.
func Check(dir, goos, goarch string) error { return check(dir, goos, goarch, false) }

// CheckLocal verifies a folder for `func start --script-root dir`, as Check
// does, except that it needs the local.settings.json Core Tools reads from
// there: one Stage copied (it must name FUNCTIONS_WORKER_RUNTIME custom and
// be readable by Core Tools), or one Core Tools wrote itself, encrypted,
// after asking for the worker runtime.
func CheckLocal(dir, goos, goarch string) error { return check(dir, goos, goarch, true) }

func check(dir, goos, goarch string, local bool) error {
	name := folderName(dir)
	restage := "go run ./dev stage -o " + dir
	if local {
		restage = "go run ./dev stage -local -o " + dir
	}
	st, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s does not exist: stage the app into it first: %s", name, restage)
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is a file, not a staged app folder: %s stages one", name, restage)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
		return fmt.Errorf("%s is a source tree (it has go.mod), not a staged app folder: go run ./dev stage -o dist stages one, then go run ./dev check dist", name)
	}
	if _, err := os.Stat(filepath.Join(dir, "host.json")); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s has no host.json, so it is not a staged app folder: %s stages one", name, restage)
	}
	app, err := manifest.Load(os.DirFS(dir))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	p := app.Host.ExecutablePath
	if filepath.IsAbs(p) || path.IsAbs(p) || strings.HasPrefix(filepath.Clean(p), "..") {
		return fmt.Errorf("%s: host.json: defaultExecutablePath %q must be relative to the app root", name, p)
	}
	exe := filepath.Join(dir, filepath.FromSlash(p))
	st, err = os.Stat(exe)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s has no handler %s (host.json's defaultExecutablePath): %s builds it", name, p, restage)
	case err != nil:
		return err
	case st.IsDir():
		return fmt.Errorf("%s: %s, the handler host.json names, is a folder, not an executable file: %s stages the app with its handler", name, p, restage)
	case !st.Mode().IsRegular():
		return fmt.Errorf("%s: the handler %s is not a regular file", name, p)
	case runtime.GOOS != "windows" && st.Mode().Perm()&0o111 == 0:
		// Windows has no executable bit (os.Stat reports none); .exe is
		// what makes a file executable there, checked below.
		return fmt.Errorf("%s: the handler %s is not an executable file: %s", name, p, restage)
	}
	if goos == "windows" && !strings.EqualFold(path.Ext(p), ".exe") {
		return fmt.Errorf("%s: the handler %s has no .exe, which Windows needs to start it: %s names it so", name, p, restage)
	}
	if err := checkBinary(exe, goos, goarch); err != nil {
		hint := "go run ./dev stage -local -o " + dir + " builds it for this machine"
		if !local {
			hint = restage + " builds it for Azure (linux/amd64)"
		}
		return fmt.Errorf("%s: the handler %s %v: %s", name, p, err, hint)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		n := e.Name()
		if n == "host.json" || n == filepath.Base(p) {
			continue
		}
		if n == funchost.LocalSettingsFile {
			if local {
				continue
			}
			return fmt.Errorf("%s holds %s, so it is a folder for func start, not a deployment package (the file would be uploaded with it, tokens and all): "+
				"stage the package without -local (%s), or check a func start folder with go run ./dev check -local %s", name, n, restage, dir)
		}
		if _, ok := app.Function(n); e.IsDir() && (ok || slices.Contains(app.Disabled, n)) {
			continue
		}
		return fmt.Errorf("%s: unexpected %s in the app root", name, n)
	}
	if len(app.Functions) == 0 {
		return fmt.Errorf("%s has no functions", name)
	}
	if local {
		s, err := funchost.ReadLocalSettings(dir)
		if err != nil {
			return err
		}
		if !s.Exists {
			return fmt.Errorf("%s has no %s, where func start --script-root %s reads its settings (never from the repository): %s -settings local.settings.json copies it there",
				name, funchost.LocalSettingsFile, dir, "go run ./dev stage -local -o "+dir)
		}
		return s.CheckForCustomHandler()
	}
	return nil
}

// folderName names dir as given and, when that is relative, absolute too.
func folderName(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil || abs == dir {
		return dir
	}
	return fmt.Sprintf("%s (%s)", dir, abs)
}

// checkBinary reports a handler that is not an executable of goos/goarch.
// An empty goos checks nothing.
func checkBinary(exe, goos, goarch string) error {
	wrong := func(got any) error { return fmt.Errorf("is built for %v, not %s/%s", got, goos, goarch) }
	switch goos {
	case "linux":
		f, err := elf.Open(exe)
		if err != nil {
			return fmt.Errorf("is not a Linux executable (%v)", err)
		}
		defer f.Close()
		want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "386": elf.EM_386}[goarch]
		if want != 0 && f.Machine != want {
			return wrong(f.Machine)
		}
	case "windows":
		f, err := pe.Open(exe)
		if err != nil {
			return fmt.Errorf("is not a Windows executable (%v)", err)
		}
		defer f.Close()
		want := map[string]uint16{"amd64": pe.IMAGE_FILE_MACHINE_AMD64, "arm64": pe.IMAGE_FILE_MACHINE_ARM64, "386": pe.IMAGE_FILE_MACHINE_I386}[goarch]
		if want != 0 && f.Machine != want {
			return wrong(fmt.Sprintf("PE machine %#x", f.Machine))
		}
	case "darwin":
		f, err := macho.Open(exe)
		if err != nil {
			return fmt.Errorf("is not a macOS executable (%v)", err)
		}
		defer f.Close()
		want := map[string]macho.Cpu{"amd64": macho.CpuAmd64, "arm64": macho.CpuArm64}[goarch]
		if want != 0 && f.Cpu != want {
			return wrong(f.Cpu)
		}
	}
	return nil
}
