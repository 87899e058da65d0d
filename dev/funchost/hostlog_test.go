package funchost

import (
	"encoding/json"
	"testing"
)

// TestConsoleRecord: the level and category the host gives a line of the
// handler's output (WorkerProcess.cs).
func TestConsoleRecord(t *testing.T) {
	tests := []struct {
		line     string
		stderr   bool
		level    Level
		category string
		message  string
	}{
		{`{"level":"ERROR","msg":"x"}`, false, Information, ConsoleCategory, `{"level":"ERROR","msg":"x"}`},
		{`{"level":"INFO","msg":"x"}`, true, Error, ConsoleCategory, `{"level":"INFO","msg":"x"}`},
		{`{"level":"WARN","msg":"x"}`, true, Warning, ConsoleCategory, `{"level":"WARN","msg":"x"}`},
		{`an ERROR about a Warning`, true, Warning, ConsoleCategory, `an ERROR about a Warning`},
		{`LanguageWorkerConsoleLog: ready`, false, Information, "Worker.HttpWorkerProcess.w1", `: ready`},
		{`azfuncjsonlog:{}`, true, Error, "Host.Function.ToolingConsoleLog", `azfuncjsonlog:{}`},
	}
	for _, tt := range tests {
		r := consoleRecord(tt.line, tt.stderr, "w1")
		if r.Level != tt.level || r.Category != tt.category || r.Message != tt.message {
			t.Errorf("%q (stderr %t): %s %s %q", tt.line, tt.stderr, r.Level, r.Category, r.Message)
		}
	}
}

// TestLogRules: host.json's logging rules as Microsoft.Extensions.Logging
// selects them.
func TestLogRules(t *testing.T) {
	var logging map[string]json.RawMessage
	_ = json.Unmarshal([]byte(`{
		"logLevel": {"default": "Warning", "Function": "Information", "Function.a": "Error"},
		"ApplicationInsights": {"samplingSettings": {}, "logLevel": {"Host.Function.Console": "None", "Function.a.User": "None"}},
		"applicationInsights": {"logLevel": {"Function": "None"}}
	}`), &logging)
	rules, err := parseLogRules(logging)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		provider, category string
		want               Level
	}{
		{"", "Function.b.User", Information},
		{"", "Function.a.User", Error},         // the longest category
		{"", "Host.Function.Console", Warning}, // default
		{"", "function.B", Information},        // categories ignore case
		{AppInsightsProvider, "Host.Function.Console", None},
		{AppInsightsProvider, "Function.a.User", None},
		{AppInsightsProvider, "Function.b.User", Information}, // no rule of the provider matches: the others apply
		{"Console", "Function.a.User", Error},
	}
	for _, tt := range tests {
		if got := minLevel(rules, tt.provider, tt.category); got != tt.want {
			t.Errorf("%q %s: %s, want %s", tt.provider, tt.category, got, tt.want)
		}
	}
	if got := minLevel(nil, "", "Host.Function.Console"); got != Information {
		t.Errorf("without rules a system category logs from %s", got)
	}
	if got := minLevel(nil, "", "MyApp"); got != None {
		t.Errorf("without rules another category logs from %s", got)
	}
	if _, err := parseLogRules(map[string]json.RawMessage{"logLevel": json.RawMessage(`{"x":"Loud"}`)}); err == nil {
		t.Error("an unknown level was accepted")
	}
}
