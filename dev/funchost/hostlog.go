package funchost

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Level is a .NET log level (Microsoft.Extensions.Logging.LogLevel).
type Level int

// Levels, in .NET's order.
const (
	Trace Level = iota
	Debug
	Information
	Warning
	Error
	Critical
	None
)

var levelNames = []string{"Trace", "Debug", "Information", "Warning", "Error", "Critical", "None"}

func (l Level) String() string {
	if l < 0 || int(l) >= len(levelNames) {
		return fmt.Sprintf("Level(%d)", int(l))
	}
	return levelNames[l]
}

func parseLevel(s string) (Level, bool) {
	for i, n := range levelNames {
		if strings.EqualFold(s, n) {
			return Level(i), true
		}
	}
	return 0, false
}

// Categories under which the host logs a custom handler's output.
const (
	// ConsoleCategory: plain lines of the handler's stdout and stderr
	// (WorkerConstants.ConsoleLogCategoryName).
	ConsoleCategory = "Host.Function.Console"
	// toolingCategory: lines starting with "azfuncjsonlog:".
	toolingCategory = "Host.Function.ToolingConsoleLog"
)

// UserCategory is the category of a function's own log lines (the Logs of
// an invocation result): Function.<name>.User (LogCategories).
func UserCategory(function string) string { return "Function." + function + ".User" }

// LogRecord is one record of the host's logs.
type LogRecord struct {
	Time     time.Time
	Level    Level
	Category string
	Message  string
	// InvocationID is set for records logged within an invocation.
	InvocationID string
}

// logRule is a logging filter rule of host.json, as Microsoft.Extensions.
// Logging reads it from configuration (LoggerFilterConfigureOptions).
type logRule struct {
	provider string // "" for every provider
	category string // "" for every category ("Default")
	level    Level
}

// AppInsightsProvider is the alias of the host's Application Insights
// logger provider ([ProviderAlias("ApplicationInsights")],
// azure-webjobs-sdk ApplicationInsightsLoggerProvider.cs).
const AppInsightsProvider = "ApplicationInsights"

// systemCategory reports the categories the host logs by default
// (ScriptConstants.SystemLogCategoryPrefixes).
func systemCategory(c string) bool {
	for _, p := range []string{"Microsoft.Azure.WebJobs.", "Function.", "Worker.", "Host."} {
		if strings.HasPrefix(c, p) {
			return true
		}
	}
	return false
}

// parseLogRules reads host.json's "logging" section: logLevel for every
// provider, <Provider>.logLevel for one (its name compared as it is
// written, as LoggerRuleSelector does).
func parseLogRules(logging map[string]json.RawMessage) ([]logRule, error) {
	var rules []logRule
	read := func(provider string, raw json.RawMessage) error {
		var levels map[string]string
		if err := json.Unmarshal(raw, &levels); err != nil {
			return fmt.Errorf("logging %s logLevel: %w", provider, err)
		}
		for cat, lv := range levels {
			level, ok := parseLevel(lv)
			if !ok {
				return fmt.Errorf("logging logLevel %s: %q is not a log level", cat, lv)
			}
			if strings.EqualFold(cat, "default") {
				cat = ""
			}
			rules = append(rules, logRule{provider: provider, category: cat, level: level})
		}
		return nil
	}
	for key, raw := range logging {
		if strings.EqualFold(key, "logLevel") {
			if err := read("", raw); err != nil {
				return nil, err
			}
			continue
		}
		var section map[string]json.RawMessage
		if json.Unmarshal(raw, &section) != nil {
			continue
		}
		for k, v := range section {
			if strings.EqualFold(k, "logLevel") {
				if err := read(key, v); err != nil {
					return nil, err
				}
			}
		}
	}
	return rules, nil
}

// minLevel is the lowest level provider logs for category. The best rule
// wins as Microsoft.Extensions.Logging's LoggerRuleSelector.IsBetter
// chooses it: a rule of the provider over a rule of none, then the longest
// category that prefixes the record's (case-insensitive), the later of
// equals. Without one, the host's default (AddDefaultWebJobsFilters):
// Information for its system categories, nothing for others.
func minLevel(rules []logRule, provider, category string) Level {
	var best *logRule
	better := func(r *logRule) bool {
		if r.provider != "" && r.provider != provider {
			return false
		}
		if r.category != "" && !strings.HasPrefix(strings.ToLower(category), strings.ToLower(r.category)) {
			return false
		}
		if best == nil {
			return true
		}
		if best.provider != "" {
			if r.provider == "" {
				return false
			}
		} else if r.provider != "" {
			return true
		}
		if best.category != "" && (r.category == "" || len(best.category) > len(r.category)) {
			return false
		}
		return true
	}
	for i := range rules {
		if better(&rules[i]) {
			best = &rules[i]
		}
	}
	if best != nil {
		return best.level
	}
	if systemCategory(category) {
		return Information
	}
	return None
}

// hostLog keeps the host's log records: all it logs (its console), and
// what its Application Insights logger sends when the app has a
// connection string.
type hostLog struct {
	mu         sync.Mutex
	rules      []logRule
	appInsight bool
	records    []LogRecord
	sent       []LogRecord
}

// maxLogRecords bounds the records kept for inspection.
const maxLogRecords = 20000

func (l *hostLog) add(r LogRecord) (shown bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.Level < minLevel(l.rules, "", r.Category) {
		return false
	}
	l.records = appendBounded(l.records, r)
	if l.appInsight && r.Level >= minLevel(l.rules, AppInsightsProvider, r.Category) {
		l.sent = appendBounded(l.sent, r)
	}
	return true
}

func appendBounded(rs []LogRecord, r LogRecord) []LogRecord {
	if len(rs) >= maxLogRecords {
		rs = rs[1:]
	}
	return append(rs, r)
}

// warnWord is what makes a stderr line a warning for the host.
var warnWord = regexp.MustCompile(`(?i)warn`)

// consoleLogWord is the prefix that puts a line under the worker's
// category; the host removes every occurrence of it.
var consoleLogWord = regexp.MustCompile(`(?i)LanguageWorkerConsoleLog`)

// consoleRecord is how the host logs one line of the handler's output
// (WorkerProcess.OnOutputDataReceived, ParseErrorMessageAndLog,
// BuildAndLogConsoleLog): a stdout line at Information; a stderr line at
// Warning when it contains "warn" in any case, else at Error
// (HttpWorkerDescription.UseStdErrorStreamForErrorsOnly is true for custom
// handlers); a line starting with "LanguageWorkerConsoleLog" under the
// worker's own category with every occurrence of that word removed; one
// starting with "azfuncjsonlog:" under the tooling category.
func consoleRecord(line string, stderr bool, workerID string) LogRecord {
	r := LogRecord{Time: time.Now(), Level: Information, Category: ConsoleCategory, Message: line}
	if stderr {
		r.Level = Error
		if warnWord.MatchString(line) {
			r.Level = Warning
		}
	}
	switch lower := strings.ToLower(line); {
	case strings.HasPrefix(lower, "languageworkerconsolelog"):
		r.Category = "Worker.HttpWorkerProcess." + workerID
		r.Message = consoleLogWord.ReplaceAllString(line, "")
	case strings.HasPrefix(lower, "azfuncjsonlog:"):
		r.Category = toolingCategory
	}
	return r
}
