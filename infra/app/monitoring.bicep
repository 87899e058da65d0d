// Log Analytics and workspace-based Application Insights. Ingestion takes
// Entra ID tokens; the identities given publish with Monitoring Metrics
// Publisher.
param location string
param tags object
param logAnalyticsName string
param appInsightsName string
param disableLocalAuth bool
param publisherPrincipalIds array

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
    disableLocalAuth: disableLocalAuth
    retentionInDays: 30
    roleAssignments: [
      for id in publisherPrincipalIds: {
        principalId: id
        roleDefinitionIdOrName: '3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher
      }
    ]
  }
}

output resourceId string = appInsights.outputs.resourceId
output connectionString string = appInsights.outputs.connectionString
