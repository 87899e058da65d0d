package main

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nbtrace/nbtrace/functions/api"
	"github.com/nbtrace/nbtrace/handler/internal/hostproto"
)

// handlerSettings are the settings the handler itself reads; the functions'
// and telemetry's own are listed beside their code. AllSettings joins them.
var handlerSettings = []api.Setting{
	{Name: "FUNCTIONS_CUSTOMHANDLER_PORT", Default: "(set by the host)", Doc: "Port to listen on, on 127.0.0.1. The Functions host picks it and sets it; FUNCTIONS_HTTPWORKER_PORT is read when it is absent.", Azure: api.ByPlatform},
	{Name: "FUNCTIONS_APP_ROOT_PATH", Default: "(set by the host)", Doc: "The app root holding host.json and the function folders; the working directory when unset.", Azure: api.ByPlatform},
	{Name: "WEBSITE_HOSTNAME", Default: "(set by Azure; localhost:7071 locally)", Doc: "The app's host name; the app's own base URL is derived from it.", Azure: api.ByPlatform},
	{Name: "NBTRACE_BASE_URL", Default: "", Doc: "The app's own public base URL, without the route prefix (such as https://api.example.com); overrides the one derived from WEBSITE_HOSTNAME.", Azure: api.Optional},
	{Name: "NBTRACE_MAX_BODY_BYTES", Default: strconv.Itoa(hostproto.DefaultMaxBodyBytes), Doc: "Largest request body accepted; larger ones are answered 413.", Azure: api.Optional},
	{Name: "NBTRACE_LOG_LEVEL", Default: "info", Doc: "Log level: debug, info, warn or error.", Azure: api.Optional},
	{Name: "NBTRACE_SHUTDOWN_TIMEOUT", Default: "20s", Doc: "On SIGTERM or SIGINT (Ctrl+C in the terminal of func start; the Functions host itself kills the handler, with no signal it can handle), how long finishing in-flight invocations and the last telemetry flush may take together (the flush gets at least 1s).", Azure: api.Optional},
	{Name: "WEBSITE_SITE_NAME", Default: "(set by Azure)", Doc: "Function App name: faas.name prefix and service.namespace (App Insights cloud_RoleName prefix).", Azure: api.ByPlatform},
	{Name: "REGION_NAME", Default: "(set by Azure)", Doc: "Azure region, as cloud.region.", Azure: api.ByPlatform},
	{Name: "WEBSITE_INSTANCE_ID", Default: "(set by Azure)", Doc: "Instance id, as service.instance.id (App Insights cloud_RoleInstance).", Azure: api.ByPlatform},
	{Name: "WEBSITE_OWNER_NAME", Default: "(set by Azure)", Doc: "Subscription and webspace; with WEBSITE_RESOURCE_GROUP gives cloud.resource_id.", Azure: api.ByPlatform},
	{Name: "WEBSITE_RESOURCE_GROUP", Default: "(set by Azure)", Doc: "Resource group of the app, for cloud.resource_id.", Azure: api.ByPlatform},
}

// config is the handler's own configuration, read once at start-up.
type config struct {
	Port            string
	AppRoot         string
	BaseURL         string
	SiteName        string
	MaxBodyBytes    int64
	LogLevel        slog.Level
	ShutdownTimeout time.Duration
}

// loadConfig reads and validates the handler's settings. It returns an
// error naming the first setting that is missing or wrong.
func loadConfig(getenv func(string) string) (config, error) {
	cfg := config{
		Port:            getenv("FUNCTIONS_CUSTOMHANDLER_PORT"),
		AppRoot:         getenv("FUNCTIONS_APP_ROOT_PATH"),
		SiteName:        getenv("WEBSITE_SITE_NAME"),
		MaxBodyBytes:    hostproto.DefaultMaxBodyBytes,
		ShutdownTimeout: 20 * time.Second,
	}
	if cfg.Port == "" {
		cfg.Port = getenv("FUNCTIONS_HTTPWORKER_PORT")
	}
	if cfg.Port == "" {
		return cfg, fmt.Errorf("FUNCTIONS_CUSTOMHANDLER_PORT is not set: the Functions host sets it when it starts the handler (run the app with the host, func start, or go run ./dev)")
	}
	if p, err := strconv.Atoi(cfg.Port); err != nil || p < 0 || p > 65535 {
		return cfg, fmt.Errorf("FUNCTIONS_CUSTOMHANDLER_PORT: %q is not a port number", cfg.Port)
	}
	if cfg.AppRoot == "" {
		wd, err := os.Getwd()
		if err != nil {
			return cfg, fmt.Errorf("FUNCTIONS_APP_ROOT_PATH is not set and the working directory is unknown: %w", err)
		}
		cfg.AppRoot = wd
	}
	if v := getenv("NBTRACE_MAX_BODY_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || n > 100<<20 {
			return cfg, fmt.Errorf("NBTRACE_MAX_BODY_BYTES: %q is not a whole number from 1 to 104857600", v)
		}
		cfg.MaxBodyBytes = n
	}
	if v := getenv("NBTRACE_LOG_LEVEL"); v != "" {
		if err := cfg.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return cfg, fmt.Errorf("NBTRACE_LOG_LEVEL: %q is not debug, info, warn or error", v)
		}
	}
	var err error
	if cfg.ShutdownTimeout, err = api.DurationSetting(getenv, "NBTRACE_SHUTDOWN_TIMEOUT", cfg.ShutdownTimeout, time.Second, 10*time.Minute); err != nil {
		return cfg, err
	}
	base, err := baseURL(getenv)
	if err != nil {
		return cfg, err
	}
	cfg.BaseURL = base
	return cfg, nil
}

// baseURL is the app's own public URL without the route prefix: the
// NBTRACE_BASE_URL setting, else http(s)://$WEBSITE_HOSTNAME (http for a
// loopback host name, as under func start), else "".
func baseURL(getenv func(string) string) (string, error) {
	if v := getenv("NBTRACE_BASE_URL"); v != "" {
		u, err := api.HTTPURLSetting("NBTRACE_BASE_URL", v)
		return strings.TrimSuffix(u, "/"), err
	}
	host := getenv("WEBSITE_HOSTNAME")
	if host == "" {
		return "", nil
	}
	scheme := "https"
	if h := strings.ToLower(host); strings.HasPrefix(h, "localhost") || strings.HasPrefix(h, "127.") || strings.HasPrefix(h, "[::1]") {
		scheme = "http"
	}
	u, err := url.Parse(scheme + "://" + host)
	if err != nil || u.Host == "" || u.Path != "" {
		return "", fmt.Errorf("WEBSITE_HOSTNAME: %q is not a host name", host)
	}
	return u.String(), nil
}
