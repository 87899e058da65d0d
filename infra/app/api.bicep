// The Function App: Flex Consumption (FC1), Linux, runtime custom 1.0 (the
// Go custom handler), signed in everywhere as the user-assigned identity.
param location string
param tags object
param name string
param planName string
param identityId string
param identityClientId string
param storageAccountName string
param storageBlobEndpoint string
param deploymentContainerName string
param appInsightsConnectionString string
param databricksWorkspaceUrl string
param databricksJobId string
param maximumInstanceCount int
param instanceMemoryMB int
param extraAppSettings object

// Every setting the app needs in Azure (those marked "set by infra/" in the
// README's settings table, checked by go test ./handler), and the host's
// identity-based storage.
var appSettings = {
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__blobServiceUri: storageBlobEndpoint
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  AZURE_CLIENT_ID: identityClientId
  OTEL_SERVICE_NAME: 'nbtrace'
  DATABRICKS_HOST: 'https://${databricksWorkspaceUrl}'
  DATABRICKS_JOB_ID: databricksJobId
}

module plan 'br/public:avm/res/web/serverfarm:0.7.0' = {
  params: {
    name: planName
    location: location
    tags: tags
    skuName: 'FC1'
    kind: 'functionapp'
    reserved: true
    zoneRedundant: false
  }
}

module site 'br/public:avm/res/web/site:0.24.0' = {
  params: {
    name: name
    location: location
    tags: union(tags, { 'azd-service-name': 'api' })
    kind: 'functionapp,linux'
    serverFarmResourceId: plan.outputs.resourceId
    httpsOnly: true
    managedIdentities: { userAssignedResourceIds: [identityId] }
    basicPublishingCredentialsPolicies: [
      { name: 'ftp', allow: false }
      { name: 'scm', allow: false }
    ]
    siteConfig: {
      alwaysOn: false
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identityId }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: { name: 'custom', version: '1.0' }
    }
    configs: [
      {
        name: 'appsettings'
        properties: union(extraAppSettings, appSettings)
      }
    ]
  }
}

output name string = site.outputs.name
output defaultHostname string = site.outputs.defaultHostname
