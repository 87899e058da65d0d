package manifest

import (
	"encoding/json"
	"fmt"
	"strings"
)

// DefaultRoutePrefix is the host's route prefix when host.json sets none
// (extensions.http.routePrefix).
const DefaultRoutePrefix = "api"

// Host is what the handler needs from host.json.
type Host struct {
	// RoutePrefix is extensions.http.routePrefix, "api" by default. An empty
	// string in host.json means no prefix, as it does for the host.
	RoutePrefix string
	// ExecutablePath is customHandler.description.defaultExecutablePath.
	ExecutablePath string
	// Forwarding is customHandler.enableForwardingHttpRequest.
	Forwarding bool
	// Proxying is customHandler.enableProxyingHttpRequest (newer hosts). It
	// takes precedence over Forwarding and hands the request over the same
	// way, at its original path.
	Proxying bool
}

// hostJSON mirrors the parts of host.json the host binds for custom handlers
// (HttpWorkerOptionsSetup binds the customHandler section case-insensitively;
// encoding/json matches keys case-insensitively too).
type hostJSON struct {
	Version       *string `json:"version"`
	CustomHandler *struct {
		Description *struct {
			DefaultExecutablePath string `json:"defaultExecutablePath"`
		} `json:"description"`
		EnableForwardingHTTPRequest bool `json:"enableForwardingHttpRequest"`
		EnableProxyingHTTPRequest   bool `json:"enableProxyingHttpRequest"`
	} `json:"customHandler"`
	Extensions *struct {
		HTTP *struct {
			RoutePrefix *string `json:"routePrefix"`
		} `json:"http"`
	} `json:"extensions"`
}

// ParseHost parses host.json. It returns an error when the file is not JSON,
// is not a version 2.0 host.json, or has no custom handler executable.
func ParseHost(data []byte) (Host, error) {
	var hj hostJSON
	if err := json.Unmarshal(data, &hj); err != nil {
		return Host{}, fmt.Errorf("host.json: %w", err)
	}
	if hj.Version == nil || *hj.Version != "2.0" {
		return Host{}, fmt.Errorf(`host.json: "version" must be "2.0"`)
	}
	if hj.CustomHandler == nil || hj.CustomHandler.Description == nil ||
		strings.TrimSpace(hj.CustomHandler.Description.DefaultExecutablePath) == "" {
		return Host{}, fmt.Errorf("host.json: customHandler.description.defaultExecutablePath is required")
	}
	h := Host{
		RoutePrefix:    DefaultRoutePrefix,
		ExecutablePath: hj.CustomHandler.Description.DefaultExecutablePath,
		Forwarding:     hj.CustomHandler.EnableForwardingHTTPRequest,
		Proxying:       hj.CustomHandler.EnableProxyingHTTPRequest,
	}
	if hj.Extensions != nil && hj.Extensions.HTTP != nil && hj.Extensions.HTTP.RoutePrefix != nil {
		h.RoutePrefix = strings.Trim(*hj.Extensions.HTTP.RoutePrefix, "/")
	}
	return h, nil
}

// Mode returns the protocol the host uses for functions with exactly one
// httpTrigger and one http output, the only kind this handler serves.
func (h Host) Mode() Mode {
	if h.Forwarding || h.Proxying {
		return Forwarding
	}
	return Payload
}
