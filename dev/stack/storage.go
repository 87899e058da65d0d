package stack

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nbtrace/nbtrace/dev/azurite"
	"github.com/nbtrace/nbtrace/handler/runclaim"
)

// startStorage begins to provide the storage of the handler's claims of
// finished runs (Options.Storage): it starts Azurite, when it is to and
// can, without waiting for it, so that it starts while the handler builds.
// The function it returns waits for it and gives the handler's settings.
// values are the settings file's.
func (s *Stack) startStorage(ctx context.Context, o Options, values []string) func() ([]string, error) {
	none := func() ([]string, error) { return nil, nil }
	for _, kv := range append(append([]string{}, values...), o.Env...) {
		if strings.HasPrefix(kv, "AzureWebJobsStorage=") || strings.HasPrefix(kv, "AzureWebJobsStorage__") {
			fmt.Fprintln(o.Log, "claims: the storage account of the settings (AzureWebJobsStorage)")
			return none
		}
	}
	switch o.Storage {
	case StorageNone:
		return none
	case "":
	default:
		fmt.Fprintln(o.Log, "claims: the storage account of Options.Storage")
		return func() ([]string, error) { return []string{"AzureWebJobsStorage=" + o.Storage}, nil }
	}
	in, err := azurite.Find(o.RepoRoot)
	if err != nil {
		fmt.Fprintf(o.Log, "claims: %v; using the in-memory guard, one instance only\n", err)
		return none
	}
	var srv *azurite.Server
	done := make(chan struct{})
	go func() {
		defer close(done)
		// An Azurite that never answers falls back to the in-memory
		// guard instead of holding the stack's start.
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if srv, err = azurite.Start(sctx, in); err == nil {
			// infra/ makes it in Azure; the handler does not.
			err = srv.CreateContainer(sctx, runclaim.Container)
		}
	}()
	// Stopped after the handler (s.stop runs last added first), and even
	// when the start fails before waiting for it.
	s.stop = append(s.stop, func() error {
		<-done
		if srv == nil {
			return nil
		}
		return srv.Stop()
	})
	return func() ([]string, error) {
		<-done
		if err != nil {
			fmt.Fprintf(o.Log, "claims: %v; using the in-memory guard, one instance only\n", err)
			return nil, nil
		}
		s.Azurite = srv
		name := "Azurite (from the PATH)"
		if in.Version != "" {
			name = "Azurite " + in.Version
		}
		fmt.Fprintf(o.Log, "claims: %s on %s: finished runs are claimed there, as in the app's storage account in Azure\n", name, srv.BlobURL)
		return []string{"AzureWebJobsStorage=" + srv.ConnectionString}, nil
	}
}
