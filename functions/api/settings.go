package api

import (
	"fmt"
	"net"
	"net/url"
	"time"
)

// DurationSetting reads the setting name as a Go duration (such as 5s): def
// when unset, else a value from min to max. The error names the setting.
func DurationSetting(getenv func(string) string, name string, def, min, max time.Duration) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < min || d > max {
		return 0, fmt.Errorf("%s: %q is not a duration from %s to %s (such as %s)", name, v, min, max, def)
	}
	return d, nil
}

// HTTPURLSetting checks that raw, the value of the setting name, is an
// absolute http or https URL without credentials. The error names the
// setting.
func HTTPURLSetting(name, raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("%s: %q is not an absolute http(s) URL", name, RedactURL(raw))
	}
	return u.String(), nil
}

// RedactURL drops the user info and the query, which may carry
// credentials, from a URL for messages and logs.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}

// LoopbackHost reports whether host (a URL's Hostname, or the host of an
// address) is localhost or a loopback IP address.
func LoopbackHost(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// TokenSafe reports whether a bearer token may be sent to raw: an HTTPS
// URL, or an HTTP one on a loopback address (a local stand-in or
// emulator), as the Azure SDKs rule (azcore's BearerTokenPolicy refuses
// "non TLS protected (https) endpoints").
func TokenSafe(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "https" || LoopbackHost(u.Hostname()))
}
