package runclaim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/nbtrace/nbtrace/functions/api"
	"github.com/nbtrace/nbtrace/functions/jobrun"
)

// Store claims runs in a blob container. Its credential is made on the
// first claim.
type Store struct {
	cfg       Config
	transport policy.Transporter // tests only; nil: azcore's default
	once      sync.Once
	cred      azcore.TokenCredential
	credErr   error
}

var _ jobrun.Claimer = (*Store)(nil)

// New returns a Store of cfg. It dials nothing.
func New(cfg Config) *Store { return &Store{cfg: cfg} }

// claim is a claim blob's content: who claimed the run, and when.
type claim struct {
	Instance  string    `json:"instance,omitempty"`
	ClaimedAt time.Time `json:"claimedAt"`
}

// Claim creates the blob <jobID>/<runID> if it does not exist: true when
// this call created it, false when it was there (409 BlobAlreadyExists,
// which Azure answers a Put Blob with If-None-Match: * on an existing
// blob; 412 ConditionNotMet is taken the same way). Any other answer, or
// none within ctx, is a *jobrun.ClaimError whose Type is the storage
// error code (such as ServerBusy, AuthorizationPermissionMismatch or
// ContainerNotFound), the HTTP status, timeout, unreachable, credential
// or config. The container is not made here: infra/ makes it in Azure,
// the local stack in its Azurite.
func (s *Store) Claim(ctx context.Context, jobID, runID int64) (bool, error) {
	name := strconv.FormatInt(jobID, 10) + "/" + strconv.FormatInt(runID, 10)
	c, err := s.blob(name)
	if err != nil {
		return false, &jobrun.ClaimError{Type: "config", Err: err}
	}
	body, _ := json.Marshal(claim{Instance: s.cfg.Instance, ClaimedAt: time.Now().UTC()})
	_, err = c.Upload(ctx, streaming.NopCloser(bytes.NewReader(body)), &blockblob.UploadOptions{
		HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: to.Ptr("application/json")},
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}},
	})
	switch {
	case err == nil:
		return true, nil
	case bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet):
		return false, nil
	}
	// A connection string's SAS is in the URL of a transport error, which
	// is logged.
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		ue.URL = api.RedactURL(ue.URL)
	}
	return false, classify(fmt.Errorf("claim %s/%s: %w", Container, name, err))
}

// blob is a client of the claim blob name. (The azblob container package,
// which would hold one pipeline for every blob, brings Apache Arrow into
// the handler, some 3 MB; a client per claim costs a few allocations, and
// the credential keeps its tokens.)
func (s *Store) blob(name string) (*blockblob.Client, error) {
	opts := &blockblob.ClientOptions{ClientOptions: policy.ClientOptions{
		// No retries: a create that succeeded but whose answer was lost
		// would, retried, meet its own blob (409) and read as another
		// instance's claim, and the run would be recorded by none. Without
		// retries that claim fails, and the run is recorded (perhaps
		// twice).
		Retry:     policy.RetryOptions{MaxRetries: -1},
		Telemetry: policy.TelemetryOptions{ApplicationID: "nbtrace"},
		Transport: s.transport,
	}}
	if s.cfg.ConnectionString != "" {
		return blockblob.NewClientFromConnectionString(s.cfg.ConnectionString, Container, name, opts)
	}
	s.once.Do(func() { s.cred, s.credErr = s.credential() })
	if s.credErr != nil {
		return nil, s.credErr
	}
	return blockblob.NewClient(s.cfg.ServiceURL+Container+"/"+name, taggedCredential{s.cred}, opts)
}

// credential is the managed identity (the user-assigned one of ClientID,
// as the host takes AzureWebJobsStorage__clientId), else the developer's
// sign-in through azidentity's default chain.
func (s *Store) credential() (azcore.TokenCredential, error) {
	if !s.cfg.ManagedIdentity {
		return azidentity.NewDefaultAzureCredential(nil)
	}
	o := &azidentity.ManagedIdentityCredentialOptions{}
	if s.cfg.ClientID != "" {
		o.ID = azidentity.ClientID(s.cfg.ClientID)
	}
	return azidentity.NewManagedIdentityCredential(o)
}

// taggedCredential marks its errors, so that a claim that fails for want
// of a token says so.
type taggedCredential struct{ azcore.TokenCredential }

func (c taggedCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.TokenCredential.GetToken(ctx, o)
	if err != nil {
		err = &credentialError{err}
	}
	return tok, err
}

type credentialError struct{ error }

func (e *credentialError) Unwrap() error { return e.error }

// classify wraps err in a *jobrun.ClaimError whose Type is low in
// cardinality: what the storage said, else why it could not say.
func classify(err error) error {
	typ := "_OTHER"
	var re *azcore.ResponseError
	var ne net.Error
	var ce *credentialError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		typ = "timeout"
	case errors.As(err, &re) && re.ErrorCode != "":
		typ = re.ErrorCode
	case errors.As(err, &re):
		typ = strconv.Itoa(re.StatusCode)
	case errors.As(err, &ce):
		typ = "credential"
	case errors.As(err, &ne):
		typ = "unreachable"
	}
	return &jobrun.ClaimError{Type: typ, Err: err}
}
