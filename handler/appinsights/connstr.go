package appinsights

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/nbtrace/nbtrace/functions/api"
)

// DefaultIngestionEndpoint is used when a connection string names none.
const DefaultIngestionEndpoint = "https://dc.services.visualstudio.com/"

// Connection is a parsed connection string.
type Connection struct {
	InstrumentationKey string
	// IngestionEndpoint ends with "/".
	IngestionEndpoint string
}

// TrackURL is where envelopes are posted; v2.1 accepts Entra ID tokens.
func (c Connection) TrackURL() string { return c.IngestionEndpoint + "v2.1/track" }

// ParseConnectionString parses APPLICATIONINSIGHTS_CONNECTION_STRING. The
// error never repeats the string, which holds the instrumentation key.
func ParseConnectionString(s string) (Connection, error) {
	var c Connection
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "instrumentationkey":
			c.InstrumentationKey = strings.TrimSpace(v)
		case "ingestionendpoint":
			c.IngestionEndpoint = strings.TrimSpace(v)
		}
	}
	if c.InstrumentationKey == "" {
		return c, errors.New("APPLICATIONINSIGHTS_CONNECTION_STRING has no InstrumentationKey")
	}
	if c.IngestionEndpoint == "" {
		c.IngestionEndpoint = DefaultIngestionEndpoint
	}
	u, err := url.Parse(c.IngestionEndpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return c, fmt.Errorf("APPLICATIONINSIGHTS_CONNECTION_STRING: IngestionEndpoint is not an http(s) URL")
	}
	if !strings.HasSuffix(c.IngestionEndpoint, "/") {
		c.IngestionEndpoint += "/"
	}
	return c, nil
}

// TLSOrLoopback reports whether a bearer token may go to the ingestion
// endpoint (api.TokenSafe).
func (c Connection) TLSOrLoopback() bool { return api.TokenSafe(c.IngestionEndpoint) }

// Auth is a parsed APPLICATIONINSIGHTS_AUTHENTICATION_STRING.
type Auth struct {
	// EntraID is true for Authorization=AAD.
	EntraID bool
	// ClientID names a user-assigned managed identity; "" means the
	// system-assigned one or the default chain.
	ClientID string
}

// ParseAuthenticationString parses "Authorization=AAD[;ClientId=…]", the
// convention of the Functions host and Microsoft's distros. "" means no
// Entra ID.
func ParseAuthenticationString(s string) (Auth, error) {
	var a Auth
	if strings.TrimSpace(s) == "" {
		return a, nil
	}
	for _, part := range strings.Split(s, ";") {
		k, v, _ := strings.Cut(part, "=")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "authorization":
			if !strings.EqualFold(strings.TrimSpace(v), "AAD") {
				return a, fmt.Errorf("APPLICATIONINSIGHTS_AUTHENTICATION_STRING: Authorization must be AAD")
			}
			a.EntraID = true
		case "clientid":
			a.ClientID = strings.TrimSpace(v)
		}
	}
	if !a.EntraID {
		return a, errors.New("APPLICATIONINSIGHTS_AUTHENTICATION_STRING: expected Authorization=AAD[;ClientId=…]")
	}
	return a, nil
}
