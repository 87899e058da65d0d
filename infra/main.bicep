// nbtrace on Azure: a Go custom handler on Flex Consumption, Application
// Insights on Log Analytics, an Azure Databricks workspace (or an existing
// one), one user-assigned managed identity for everything the app signs in
// to, a second one held by a Databricks access connector for the notebook's
// telemetry, and alerts. Deployed by `azd up`; the post-provision hook then
// puts the notebook job into the workspace, with the Unity Catalog service
// credential the notebook signs in to Application Insights with.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; names and tags derive from it.')
param environmentName string

// Regions with Flex Consumption, as Microsoft's Flex Consumption azd
// templates list them (Azure-Samples/functions-quickstart-dotnet-azd
// infra/main.bicep, "Updated location/region list for Flex Consumption",
// 2025-05-05); `az functionapp list-flexconsumption-locations` tells the
// current list. azd offers only these when it asks for a region.
@minLength(1)
@description('Region of every resource: one with Flex Consumption.')
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'eastus2euap'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the deploying user or principal: it gets the same data roles as the app, to run the deploy step and read telemetry.')
param principalId string = ''

@allowed(['User', 'ServicePrincipal', 'Group'])
param principalType string = 'User'

@description('Names; empty means an abbreviation plus a token unique to the subscription, environment and region.')
param resourceGroupName string = ''
param functionAppName string = ''
param planName string = ''
param storageAccountName string = ''
param identityName string = ''
param ingestionIdentityName string = ''
param accessConnectorName string = ''
param logAnalyticsName string = ''
param appInsightsName string = ''
param databricksWorkspaceName string = ''

@description('ARM id of an Azure Databricks workspace to use instead of creating one.')
param existingDatabricksWorkspaceId string = ''

@allowed(['premium', 'standard'])
@description('SKU of a new Databricks workspace; premium is needed for job-level access control.')
param databricksSku string = 'premium'

@description('Id of the notebook job, written by the post-provision hook (go run ./deploy). Empty on the first provision.')
param databricksJobId string = ''

@minValue(1)
@maxValue(1000)
@description('Flex Consumption: most instances the app scales out to.')
param maximumInstanceCount int = 40

@allowed([512, 2048, 4096])
@description('Flex Consumption: memory of each instance, in MB.')
param instanceMemoryMB int = 2048

@description('Send alerts to this address (an action group is made); empty and no actionGroupId: alerts fire without notifying.')
param alertEmail string = ''

@description('ARM id of an existing action group for the alerts; wins over alertEmail.')
param actionGroupId string = ''

@description('Let telemetry be sent with the instrumentation key alone (Application Insights local authentication; azd env var APPLICATIONINSIGHTS_LOCAL_AUTH). Off: Entra ID only; the app and the notebook both sign in with managed identities.')
param allowInstrumentationKeyIngestion bool = false

@description('Alert when more than this share of requests fails in 15 minutes (0-1).')
param failedRequestRateThreshold string = '0.05'

@description('Alert when the 95th percentile of notebook or validate takes longer, in milliseconds.')
param p95LatencyThresholdMs int = 5000

@description('App settings added to those the app needs (the optional settings in the README, such as SERVICE_A_URL or OTEL_EXPORTER_OTLP_ENDPOINT).')
param extraAppSettings object = {}

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var useExistingDatabricks = !empty(existingDatabricksWorkspaceId)
var resourceGroupNameActual = !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
// Subscription and resource group of an existing workspace; otherwise this
// deployment's own, which exists: a module's scope is evaluated even when
// its condition is false (Azure/bicep#11463), so a placeholder must name a
// resource group that is there.
var existingDatabricksParts = split(useExistingDatabricks ? existingDatabricksWorkspaceId : '/subscriptions/${subscription().subscriptionId}/resourceGroups/${resourceGroupNameActual}/providers/Microsoft.Databricks/workspaces/none', '/')

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: resourceGroupNameActual
  location: location
  tags: tags
}

module identity 'br/public:avm/res/managed-identity/user-assigned-identity:0.6.0' = {
  scope: rg
  params: {
    name: !empty(identityName) ? identityName : '${abbrs.managedIdentityUserAssignedIdentities}api-${resourceToken}'
    location: location
    tags: tags
  }
}

// The notebook's identity for ingestion, held by an access connector; the
// deploy step makes the Unity Catalog service credential for it.
module ingestion 'app/ingestion.bicep' = {
  scope: rg
  params: {
    location: location
    tags: tags
    identityName: !empty(ingestionIdentityName) ? ingestionIdentityName : '${abbrs.managedIdentityUserAssignedIdentities}ingest-${resourceToken}'
    accessConnectorName: !empty(accessConnectorName) ? accessConnectorName : '${abbrs.databricksAccessConnectors}${resourceToken}'
  }
}

module monitoring 'app/monitoring.bicep' = {
  scope: rg
  params: {
    location: location
    tags: tags
    logAnalyticsName: !empty(logAnalyticsName) ? logAnalyticsName : '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    appInsightsName: !empty(appInsightsName) ? appInsightsName : '${abbrs.insightsComponents}${resourceToken}'
    disableLocalAuth: !allowInstrumentationKeyIngestion
    identityPrincipalId: identity.outputs.principalId
    ingestionPrincipalId: ingestion.outputs.identityPrincipalId
    userPrincipalId: principalId
    userPrincipalType: principalType
  }
}

module storage 'app/storage.bicep' = {
  scope: rg
  params: {
    location: location
    tags: tags
    name: !empty(storageAccountName) ? storageAccountName : '${abbrs.storageStorageAccounts}${resourceToken}'
    identityPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
    userPrincipalType: principalType
  }
}

module databricks 'app/databricks.bicep' = {
  scope: rg
  params: {
    location: location
    tags: tags
    name: !empty(databricksWorkspaceName) ? databricksWorkspaceName : '${abbrs.databricksWorkspaces}${resourceToken}'
    sku: databricksSku
    existingWorkspaceId: existingDatabricksWorkspaceId
    userPrincipalId: principalId
    userPrincipalType: principalType
  }
}

// Contributor on an existing workspace for the deploying user, in the
// workspace's resource group.
module existingDatabricksAccess 'app/databricks-access.bicep' = if (useExistingDatabricks && !empty(principalId)) {
  scope: resourceGroup(existingDatabricksParts[2], existingDatabricksParts[4])
  params: {
    workspaceName: last(existingDatabricksParts)
    principalId: principalId
    principalType: principalType
  }
}

module api 'app/api.bicep' = {
  scope: rg
  params: {
    location: location
    tags: tags
    name: !empty(functionAppName) ? functionAppName : '${abbrs.webSitesFunctions}${resourceToken}'
    planName: !empty(planName) ? planName : '${abbrs.webServerFarms}${resourceToken}'
    identityId: identity.outputs.resourceId
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    appInsightsConnectionString: monitoring.outputs.connectionString
    databricksWorkspaceUrl: databricks.outputs.workspaceUrl
    databricksJobId: databricksJobId
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    extraAppSettings: extraAppSettings
  }
}

module alerts 'app/alerts.bicep' = {
  scope: rg
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    appInsightsId: monitoring.outputs.resourceId
    alertEmail: alertEmail
    actionGroupId: actionGroupId
    failedRequestRateThreshold: failedRequestRateThreshold
    p95LatencyThresholdMs: p95LatencyThresholdMs
  }
}

// Outputs become azd environment values (UPPER_SNAKE), read by the hooks.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = 'https://${api.outputs.defaultHostname}'
output AZURE_CLIENT_ID string = identity.outputs.clientId
output DATABRICKS_HOST string = 'https://${databricks.outputs.workspaceUrl}'
output DATABRICKS_AZURE_RESOURCE_ID string = databricks.outputs.resourceId
output APPLICATIONINSIGHTS_RESOURCE_ID string = monitoring.outputs.resourceId
// ARM ids, no secrets: the post-provision step names them in the Unity
// Catalog service credential nbtrace-ingestion.
output DATABRICKS_ACCESS_CONNECTOR_ID string = ingestion.outputs.accessConnectorResourceId
output DATABRICKS_INGESTION_IDENTITY_ID string = ingestion.outputs.identityResourceId
