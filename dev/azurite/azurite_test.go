package azurite

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestAzuriteTakesAConditionalCreate: the started service answers the
// Azure SDK with its connection string (container create, an upload with
// If-None-Match: *), refuses a second such upload with 409
// BlobAlreadyExists as Azure does, and is gone, port and all, after Stop.
func TestAzuriteTakesAConditionalCreate(t *testing.T) {
	began := time.Now()
	s := StartForTest(t, repoRoot(t))
	t.Logf("Azurite answered on %s after %s", s.BlobURL, time.Since(began).Round(time.Millisecond))
	if !strings.HasPrefix(s.BlobURL, "http://127.0.0.1:") {
		t.Errorf("BlobURL = %s, want a loopback address", s.BlobURL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := container.NewClientFromConnectionString(s.ConnectionString, "claims", &container.ClientOptions{ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, nil); err != nil {
		t.Fatalf("create container: %v", err)
	}
	upload := func() error {
		_, err := c.NewBlockBlobClient("1/2").Upload(ctx, streaming.NopCloser(bytes.NewReader([]byte("{}"))), &blockblob.UploadOptions{
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}})
		return err
	}
	if err := upload(); err != nil {
		t.Fatalf("first upload: %v", err)
	}
	err = upload()
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusConflict || !bloberror.HasCode(err, bloberror.BlobAlreadyExists) {
		t.Fatalf("second upload: %v, want 409 BlobAlreadyExists", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if res, err := http.Get(s.BlobURL); err == nil {
		res.Body.Close()
		t.Errorf("%s still answers after Stop", s.BlobURL)
	}
	if _, err := os.Stat(s.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Azurite's folder %s is left: %v", s.dir, err)
	}
}

// TestFindNamesTheInstallCommand: with no Azurite anywhere, Find says how
// to install it; with another version in the project's folder, it names
// both.
func TestFindNamesTheInstallCommand(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	root := t.TempDir()
	if _, err := Find(root); !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), InstallCommand) {
		t.Errorf("Find in an empty folder = %v, want ErrNotInstalled naming %q", err, InstallCommand)
	}
	dir := filepath.Join(root, ".nbtrace", "node", "node_modules", "azurite")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"name":"azurite","version":"3.36.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Find(root); err == nil || !strings.Contains(err.Error(), "3.36.0") || !strings.Contains(err.Error(), Version) {
		t.Errorf("Find with Azurite 3.36.0 = %v, want an error naming it and %s", err, Version)
	}
}

// TestCIInstallsThePinnedAzurite: CI installs Azurite with InstallCommand
// and then requires it.
func TestCIInstallsThePinnedAzurite(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	ci := string(b)
	install := strings.Index(ci, "\n"+InstallCommand+"\n")
	require := strings.Index(ci, "\nexport "+RequireEnv+"=1\n")
	if install < 0 || require < install {
		t.Errorf(".ci/run does not run %q and then export %s=1", InstallCommand, RequireEnv)
	}
}
