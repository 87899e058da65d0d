// Log Analytics and workspace-based Application Insights. Ingestion takes
// Entra ID tokens; the app's identity, the notebook's ingestion identity
// (held by the Databricks access connector, ingestion.bicep) and the
// deploying user publish with Monitoring Metrics Publisher, the role
// Entra-authenticated ingestion asks for on the component
// (https://learn.microsoft.com/azure/azure-monitor/app/azure-ad-authentication).
// Each assignment names its principal type:
// the identity is created in the same deployment, and without the type
// ARM may look it up before it has replicated (PrincipalNotFound;
// https://learn.microsoft.com/azure/role-based-access-control/role-assignments-template#new-service-principal).
param location string
param tags object
param logAnalyticsName string
param appInsightsName string
param disableLocalAuth bool
param identityPrincipalId string
param ingestionPrincipalId string
param userPrincipalId string
param userPrincipalType string

module logAnalytics 'br/public:avm/res/operational-insights/workspace:0.16.1' = {
  params: {
    name: logAnalyticsName
    location: location
    tags: tags
    skuName: 'PerGB2018'
    dataRetention: 30
  }
}

module appInsights 'br/public:avm/res/insights/component:0.8.0' = {
  params: {
    name: appInsightsName
    location: location
    tags: tags
    workspaceResourceId: logAnalytics.outputs.resourceId
    // avm/res/insights/component:0.8.0 (main.bicep): disableLocalAuth,
    // default false; true refuses telemetry sent with the instrumentation
    // key alone (https://learn.microsoft.com/azure/azure-monitor/app/azure-ad-authentication#disable-local-authentication).
    disableLocalAuth: disableLocalAuth
    retentionInDays: 30
    roleAssignments: concat(
      [
        { principalId: identityPrincipalId, principalType: 'ServicePrincipal', roleDefinitionIdOrName: '3913510d-42f4-4e42-8a64-420c390055eb' } // Monitoring Metrics Publisher
        { principalId: ingestionPrincipalId, principalType: 'ServicePrincipal', roleDefinitionIdOrName: '3913510d-42f4-4e42-8a64-420c390055eb' } // Monitoring Metrics Publisher
      ],
      empty(userPrincipalId) ? [] : [{ principalId: userPrincipalId, principalType: userPrincipalType, roleDefinitionIdOrName: '3913510d-42f4-4e42-8a64-420c390055eb' }] // Monitoring Metrics Publisher
    )
  }
}

output resourceId string = appInsights.outputs.resourceId
output connectionString string = appInsights.outputs.connectionString
