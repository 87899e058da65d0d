package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/nbtrace/nbtrace/functions/api"
	"github.com/nbtrace/nbtrace/handler/runclaim"
)

// These tests read infra/ as text (the Bicep CLI cannot be installed here;
// see the README's verification list for a real subscription).

func bicepFiles(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir("../infra", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".bicep") {
			return err
		}
		b, err := os.ReadFile(p)
		files[p] = string(b)
		return err
	})
	if err != nil || len(files) == 0 {
		t.Fatalf("read infra: %v (%d files)", err, len(files))
	}
	return files
}

// appSettingNames reads the keys of `var appSettings = { … }` in api.bicep.
func appSettingNames(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../infra/app/api.bicep")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "var appSettings = {\n")
	body, _, ok2 := strings.Cut(rest, "\n}\n")
	if !ok || !ok2 {
		t.Fatal("infra/app/api.bicep has no `var appSettings = { … }` block")
	}
	names := map[string]bool{}
	key := regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:`)
	for _, line := range strings.Split(body, "\n") {
		if m := key.FindStringSubmatch(line); m != nil {
			names[m[1]] = true
		}
	}
	return names
}

// TestInfraSetsEverySettingTheAppNeeds derives from AllSettings, the one
// list of settings in the code: every setting marked ByInfra is set by the
// Bicep, no setting that is local-only or set by the platform is, and the
// Bicep sets nothing the app does not read. The host's identity-based
// storage settings (AzureWebJobsStorage__*) are among them: the handler
// reads them too, for its claims of finished runs; the connection string
// AzureWebJobsStorage is local-only, so shared keys stay off in Azure.
func TestInfraSetsEverySettingTheAppNeeds(t *testing.T) {
	set := appSettingNames(t)
	known := map[string]api.Provision{}
	for _, s := range AllSettings() {
		known[s.Name] = s.Azure
		switch s.Azure {
		case api.ByInfra:
			if !set[s.Name] {
				t.Errorf("%s is needed in Azure but infra/app/api.bicep does not set it", s.Name)
			}
		case api.LocalOnly, api.ByPlatform:
			if set[s.Name] {
				t.Errorf("%s is %s but infra/app/api.bicep sets it", s.Name, s.Azure)
			}
		}
	}
	for name := range set {
		if _, ok := known[name]; !ok {
			t.Errorf("infra/app/api.bicep sets %s, which the handler does not read", name)
		}
	}
}

// The built-in roles the infrastructure assigns, from Azure's built-in
// roles reference.
var builtInRoles = map[string]string{
	"3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
	"b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
	"974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
	"0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
	"b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
}

// TestRoleIDsAreTheDocumentedOnes: every role GUID in infra/ is a known
// built-in role, and the line says which, in a comment.
func TestRoleIDsAreTheDocumentedOnes(t *testing.T) {
	guid := regexp.MustCompile(`'([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})'`)
	found := 0
	for file, text := range bicepFiles(t) {
		for i, line := range strings.Split(text, "\n") {
			for _, m := range guid.FindAllStringSubmatch(line, -1) {
				found++
				role, ok := builtInRoles[m[1]]
				if !ok {
					t.Errorf("%s:%d: %s is not a known built-in role", file, i+1, m[1])
					continue
				}
				if !strings.Contains(line, "// "+role) {
					t.Errorf("%s:%d: role %s has no comment naming it (%s)", file, i+1, m[1], role)
				}
			}
		}
	}
	if found < 5 {
		t.Errorf("only %d role ids found", found)
	}
}

// TestModulesArePinned: every registry module names an exact version.
func TestModulesArePinned(t *testing.T) {
	ref := regexp.MustCompile(`'br/public:([^':]+)(?::([^']*))?'`)
	pinned := regexp.MustCompile(`^\d+\.\d+\.\d+$`)
	var mods []string
	for file, text := range bicepFiles(t) {
		for _, m := range ref.FindAllStringSubmatch(text, -1) {
			mods = append(mods, m[1]+":"+m[2])
			if !strings.HasPrefix(m[1], "avm/") {
				t.Errorf("%s: %s is not an Azure Verified Module", file, m[1])
			}
			if !pinned.MatchString(m[2]) {
				t.Errorf("%s: %s is not pinned to an exact version (%q)", file, m[1], m[2])
			}
		}
	}
	sort.Strings(mods)
	if len(mods) < 8 {
		t.Errorf("only %d modules: %v", len(mods), mods)
	}
}

// TestNoSecretsInOutputsOrDefaults: no output or parameter default carries
// a key, password or connection string, and nothing lists keys.
func TestNoSecretsInOutputsOrDefaults(t *testing.T) {
	secretish := regexp.MustCompile(`(?i)(key|secret|password|token|connectionstring|connection_string)`)
	output := regexp.MustCompile(`^output\s+(\S+)\s+\S+\s*=\s*(.*)$`)
	param := regexp.MustCompile(`^param\s+(\S+)\s+\S+\s*=\s*(.+)$`)
	for file, text := range bicepFiles(t) {
		if strings.Contains(text, "listKeys(") || strings.Contains(text, "listkeys(") {
			t.Errorf("%s lists keys", file)
		}
		secure := false
		for i, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "@secure()") {
				secure = true
				continue
			}
			if m := param.FindStringSubmatch(line); m != nil {
				if secure && strings.Trim(m[2], "' ") != "" {
					t.Errorf("%s:%d: secure parameter %s has a default", file, i+1, m[1])
				}
				secure = false
			}
			if m := output.FindStringSubmatch(line); m != nil && file == filepath.Join("..", "infra", "main.bicep") {
				if secretish.MatchString(m[1]) || secretish.MatchString(m[2]) {
					t.Errorf("%s:%d: output %s may carry a secret: %s", file, i+1, m[1], m[2])
				}
			}
		}
	}
}

// TestAzureYAMLDeploysTheStagedFolder: azd packages what the stage step
// writes, built for linux/amd64.
func TestAzureYAMLDeploysTheStagedFolder(t *testing.T) {
	b, err := os.ReadFile("../azure.yaml")
	if err != nil {
		t.Fatal(err)
	}
	y := string(b)
	for _, want := range []string{"host: function", "language: custom", "dist: dist", "go run ./dev stage -o dist -goos linux -goarch amd64", "postprovision"} {
		if !strings.Contains(y, want) {
			t.Errorf("azure.yaml lacks %q", want)
		}
	}
	// Every hook works on every OS: a posix and a windows form of the same
	// go run command, no shell script.
	for _, cmd := range []string{"go run ./dev stage -o dist -goos linux -goarch amd64", "go run ./deploy -azd-postprovision"} {
		if n := strings.Count(y, "run: "+cmd); n != 2 {
			t.Errorf("azure.yaml runs %q %d times, want once for posix and once for windows", cmd, n)
		}
	}
	if strings.Count(y, "posix:") != strings.Count(y, "windows:") || strings.Contains(y, ".sh") || strings.Contains(y, ".ps1") {
		t.Error("azure.yaml has a hook for one OS only, or a script of one shell")
	}
	params, err := os.ReadFile("../infra/main.parameters.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"${AZURE_ENV_NAME}", "${AZURE_LOCATION}", "${AZURE_PRINCIPAL_ID}", "${DATABRICKS_JOB_ID="} {
		if !strings.Contains(string(params), want) {
			t.Errorf("main.parameters.json lacks %s", want)
		}
	}
}

// TestLocationsHaveFlexConsumption: azd offers only regions with Flex
// Consumption, and every role assignment names its principal type.
func TestLocationsHaveFlexConsumption(t *testing.T) {
	files := bicepFiles(t)
	main := files["../infra/main.bicep"]
	loc := main[strings.Index(main, "@allowed([\n  'australiaeast'"):]
	loc = loc[:strings.Index(loc, "param location string")]
	if !strings.Contains(loc, "type: 'location'") || strings.Count(loc, "'") < 60 || strings.Contains(loc, "'eastus3'") {
		t.Errorf("location is not restricted to the Flex Consumption regions with azd's location metadata:\n%s", loc)
	}
	if strings.Contains(main, "resourceGroups/none/") {
		t.Error("a skipped module's scope names a resource group that does not exist")
	}
	for file, text := range files {
		if strings.Contains(text, "roleDefinitionIdOrName") || strings.Contains(text, "Microsoft.Authorization/roleAssignments") {
			if n, m := strings.Count(text, "roleDefinitionIdOrName")+strings.Count(text, "roleDefinitionId:"), strings.Count(text, "principalType: "); m < n {
				t.Errorf("%s: %d role assignments, %d with a principal type", file, n, m)
			}
		}
	}
}

// TestTheAppHoldsNoRoleOnTheWorkspace: the app's identity gets nothing on
// the Databricks workspace resource (the deploy step grants it
// CAN_MANAGE_RUN on the job inside Databricks); the deploying user's
// Contributor names its principal type.
func TestTheAppHoldsNoRoleOnTheWorkspace(t *testing.T) {
	files := bicepFiles(t)
	for _, name := range []string{"databricks.bicep", "databricks-access.bicep"} {
		text, ok := files["../infra/app/"+name]
		if !ok {
			t.Fatalf("no infra/app/%s", name)
		}
		if strings.Contains(text, "identityPrincipalId") {
			t.Errorf("%s gives the app's identity a role on the workspace", name)
		}
		if !strings.Contains(text, "principalType: ") {
			t.Errorf("%s assigns a role without a principal type", name)
		}
	}
	main, ok := files["../infra/main.bicep"]
	if !ok {
		t.Fatal("no infra/main.bicep")
	}
	for _, module := range []string{"app/databricks.bicep", "app/databricks-access.bicep"} {
		block := main[strings.Index(main, module):]
		block = block[:strings.Index(block, "\n}\n")]
		if strings.Contains(block, "identity.outputs.principalId") {
			t.Errorf("main.bicep passes the app's identity to %s", module)
		}
	}
}

// TestHostJSONSendsEachLogOnce: the handler's records reach Application
// Insights from its own exporter, with their level and trace ids; the
// host's copies (its console category for stdout and stderr, each
// function's user category for an answer's Logs) are kept from its
// Application Insights logger, and only from it. The provider name is
// written as the host's logger names itself (case counts).
func TestHostJSONSendsEachLogOnce(t *testing.T) {
	b, err := os.ReadFile("../host.json")
	if err != nil {
		t.Fatal(err)
	}
	var hj struct {
		Logging struct {
			LogLevel map[string]string `json:"logLevel"`
			AI       *struct {
				LogLevel map[string]string `json:"logLevel"`
			} `json:"ApplicationInsights"`
		} `json:"logging"`
	}
	if err := json.Unmarshal(b, &hj); err != nil {
		t.Fatal(err)
	}
	if hj.Logging.AI == nil || !strings.Contains(string(b), `"ApplicationInsights"`) {
		t.Fatal(`host.json has no logging "ApplicationInsights" section`)
	}
	want := []string{"Host.Function.Console"}
	entries, _ := os.ReadDir("../functions")
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join("../functions", e.Name(), "function.json")); err == nil {
			want = append(want, "Function."+e.Name()+".User")
		}
	}
	for _, c := range want {
		if hj.Logging.AI.LogLevel[c] != "None" {
			t.Errorf("host.json sends the host's copies of %s to Application Insights", c)
		}
		if lv, ok := hj.Logging.LogLevel[c]; ok && lv == "None" {
			t.Errorf("host.json hides %s from the host's own log", c)
		}
	}
}

// bicepModule is one `module name 'ref' = … { … }` of a Bicep file.
type bicepModule struct {
	file, ref, body string
}

// bicepModules finds every module of infra/ by its symbolic name, file by
// file: the body runs to the first closing brace (or, for a loop, bracket)
// at the start of a line.
func bicepModules(t *testing.T) map[string]map[string]bicepModule {
	t.Helper()
	decl := regexp.MustCompile(`(?m)^module (\w+) '([^']+)'`)
	closing := regexp.MustCompile(`(?m)^[}\]]$`)
	out := map[string]map[string]bicepModule{}
	for file, text := range bicepFiles(t) {
		out[file] = map[string]bicepModule{}
		for _, m := range decl.FindAllStringSubmatchIndex(text, -1) {
			body := text[m[0]:]
			loc := closing.FindStringIndex(body)
			if loc == nil {
				t.Fatalf("%s: module %s has no closing brace", file, text[m[2]:m[3]])
			}
			end := loc[0]
			out[file][text[m[2]:m[3]]] = bicepModule{file: file, ref: text[m[4]:m[5]], body: body[:end]}
		}
	}
	return out
}

// findModule returns the one module of infra/ whose reference starts with
// prefix.
func findModule(t *testing.T, mods map[string]map[string]bicepModule, prefix string) (string, bicepModule) {
	t.Helper()
	var found []string
	var name string
	var mod bicepModule
	for _, fileMods := range mods {
		for n, m := range fileMods {
			if strings.HasPrefix(m.ref, prefix) {
				found, name, mod = append(found, m.file+":"+n), n, m
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d modules %s… (want 1): %v", len(found), prefix, found)
	}
	return name, mod
}

// TestTheNotebookHasAnIngestionIdentity: an Azure Databricks Access
// Connector (AVM 0.4.3) holds a user-assigned identity of its own, made by
// the same AVM version as the app's, and no system-assigned one: the Unity
// Catalog service credential the deploy step makes signs in as it.
func TestTheNotebookHasAnIngestionIdentity(t *testing.T) {
	mods := bicepModules(t)
	const connectorRef = "br/public:avm/res/databricks/access-connector:"
	_, connector := findModule(t, mods, connectorRef)
	if connector.ref != connectorRef+"0.4.3" {
		t.Errorf("%s: access connector module %s, want version 0.4.3", connector.file, connector.ref)
	}
	appIdentity, ok := mods["../infra/main.bicep"]["identity"]
	if !ok || !strings.HasPrefix(appIdentity.ref, "br/public:avm/res/managed-identity/user-assigned-identity:") {
		t.Fatalf("main.bicep has no user-assigned identity module named identity: %+v", appIdentity)
	}
	holds := regexp.MustCompile(`managedIdentities: \{ userAssignedResourceIds: \[(\w+)\.outputs\.resourceId\] \}`).FindStringSubmatch(connector.body)
	if holds == nil {
		t.Fatalf("%s: the access connector holds no user-assigned identity of a module in its file:\n%s", connector.file, connector.body)
	}
	if strings.Contains(connector.body, "systemAssigned") {
		t.Errorf("%s: the access connector has a system-assigned identity too", connector.file)
	}
	held, ok := mods[connector.file][holds[1]]
	switch {
	case !ok:
		t.Errorf("%s: the access connector holds %s, not a module of its file", connector.file, holds[1])
	case held.ref != appIdentity.ref:
		t.Errorf("%s: the ingestion identity is %s, the app's %s: use one version", connector.file, held.ref, appIdentity.ref)
	case held == appIdentity:
		t.Error("the access connector holds the app's identity")
	}
}

// TestTheIngestionIdentityOnlyPublishes: the ingestion identity's
// principal reaches the Application Insights module, which gives it
// Monitoring Metrics Publisher as a ServicePrincipal, and nothing else.
func TestTheIngestionIdentityOnlyPublishes(t *testing.T) {
	files := bicepFiles(t)
	mods := bicepModules(t)
	ingestion, ok := mods["../infra/main.bicep"]["ingestion"]
	if !ok || ingestion.ref != "app/ingestion.bicep" {
		t.Fatalf("main.bicep has no module ingestion 'app/ingestion.bicep': %+v", ingestion)
	}
	if !strings.Contains(files["../infra/app/ingestion.bicep"], "output identityPrincipalId string = identity.outputs.principalId\n") {
		t.Error("ingestion.bicep does not output its identity's principal id")
	}
	main := files["../infra/main.bicep"]
	if n := strings.Count(main, "ingestion.outputs.identityPrincipalId"); n != 1 {
		t.Errorf("main.bicep passes the ingestion identity's principal %d times, want once (to monitoring)", n)
	}
	if !strings.Contains(mods["../infra/main.bicep"]["monitoring"].body, "ingestionPrincipalId: ingestion.outputs.identityPrincipalId\n") {
		t.Error("main.bicep does not pass the ingestion identity's principal to monitoring")
	}
	_, component := findModule(t, mods, "br/public:avm/res/insights/component:")
	if component.file != "../infra/app/monitoring.bicep" {
		t.Fatalf("Application Insights is in %s, not monitoring.bicep", component.file)
	}
	const want = "{ principalId: ingestionPrincipalId, principalType: 'ServicePrincipal', roleDefinitionIdOrName: '3913510d-42f4-4e42-8a64-420c390055eb' } // Monitoring Metrics Publisher"
	if !strings.Contains(component.body, want) {
		t.Errorf("monitoring.bicep: Application Insights does not assign\n\t%s\nin:\n%s", want, component.body)
	}
	if n := strings.Count(files["../infra/app/monitoring.bicep"], "principalId: ingestionPrincipalId"); n != 1 {
		t.Errorf("monitoring.bicep assigns the ingestion identity %d roles, want 1", n)
	}
}

// TestKeyIngestionIsOffByDefault: Application Insights takes Entra ID
// tokens only (disableLocalAuth true) unless the azd environment sets
// APPLICATIONINSIGHTS_LOCAL_AUTH=true.
func TestKeyIngestionIsOffByDefault(t *testing.T) {
	files := bicepFiles(t)
	mods := bicepModules(t)
	main := files["../infra/main.bicep"]
	if !strings.Contains(main, "\nparam allowInstrumentationKeyIngestion bool = false\n") {
		t.Error("main.bicep: allowInstrumentationKeyIngestion is not a bool that defaults to false")
	}
	if !strings.Contains(mods["../infra/main.bicep"]["monitoring"].body, "disableLocalAuth: !allowInstrumentationKeyIngestion\n") {
		t.Error("main.bicep does not pass disableLocalAuth: !allowInstrumentationKeyIngestion to monitoring")
	}
	_, component := findModule(t, mods, "br/public:avm/res/insights/component:")
	if !strings.Contains(component.body, "disableLocalAuth: disableLocalAuth\n") {
		t.Errorf("%s: Application Insights does not take disableLocalAuth from the parameter", component.file)
	}
	b, err := os.ReadFile("../infra/main.parameters.json")
	if err != nil {
		t.Fatal(err)
	}
	var params struct {
		Parameters map[string]struct {
			Value any `json:"value"`
		} `json:"parameters"`
	}
	if err := json.Unmarshal(b, &params); err != nil {
		t.Fatal(err)
	}
	if got := params.Parameters["allowInstrumentationKeyIngestion"].Value; got != "${APPLICATIONINSIGHTS_LOCAL_AUTH=false}" {
		t.Errorf("main.parameters.json: allowInstrumentationKeyIngestion = %v, want ${APPLICATIONINSIGHTS_LOCAL_AUTH=false}", got)
	}
}

// TestIngestionOutputs: azd gets the access connector's and the ingestion
// identity's ARM ids, which the post-provision step names in the service
// credential.
func TestIngestionOutputs(t *testing.T) {
	files := bicepFiles(t)
	main, ingestion := files["../infra/main.bicep"], files["../infra/app/ingestion.bicep"]
	for _, want := range []string{
		"\noutput DATABRICKS_ACCESS_CONNECTOR_ID string = ingestion.outputs.accessConnectorResourceId\n",
		"\noutput DATABRICKS_INGESTION_IDENTITY_ID string = ingestion.outputs.identityResourceId\n",
	} {
		if !strings.Contains(main, want) {
			t.Errorf("main.bicep lacks %s", strings.TrimSpace(want))
		}
	}
	for _, want := range []string{
		"\noutput accessConnectorResourceId string = accessConnector.outputs.resourceId\n",
		"\noutput identityResourceId string = identity.outputs.resourceId\n",
	} {
		if !strings.Contains(ingestion, want) {
			t.Errorf("ingestion.bicep lacks %s", strings.TrimSpace(want))
		}
	}
}

// TestRunClaimsExpire: the storage account holds the container of the run
// claims (runclaim.Container), and a lifecycle rule deletes the claims
// runclaim.RetentionDays after they are made: longer than Databricks keeps
// a run (60 days), so no run can be read, and recorded, after its claim
// is gone. The app's identity may write blobs and make the container
// (Storage Blob Data Owner).
func TestRunClaimsExpire(t *testing.T) {
	if runclaim.RetentionDays <= 60 {
		t.Errorf("claims are kept %d days, no longer than Databricks keeps runs (60)", runclaim.RetentionDays)
	}
	text := bicepFiles(t)["../infra/app/storage.bicep"]
	for _, want := range []string{
		"\nvar runClaimsContainerName = '" + runclaim.Container + "'\n",
		"\nvar runClaimsRetentionDays = " + strconv.Itoa(runclaim.RetentionDays) + "\n",
		"'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner",
		"identityRoles = [for role in roles: { principalId: identityPrincipalId",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("storage.bicep lacks %q", strings.TrimSpace(want))
		}
	}
	_, storage := findModule(t, bicepModules(t), "br/public:avm/res/storage/storage-account:")
	body := regexp.MustCompile(`\s+`).ReplaceAllString(storage.body, " ")
	for _, want := range []string{
		"{ name: runClaimsContainerName, publicAccess: 'None' }",
		"managementPolicyRules: [ { name: 'expire-run-claims' enabled: true type: 'Lifecycle'",
		"baseBlob: { delete: { daysAfterCreationGreaterThan: runClaimsRetentionDays } }",
		"filters: { blobTypes: ['blockBlob'] prefixMatch: ['${runClaimsContainerName}/'] }",
		"roleAssignments: concat(identityRoles,",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("%s: the storage account lacks %q in:\n%s", storage.file, want, storage.body)
		}
	}
}
