// The app's storage: identity-based AzureWebJobsStorage (shared keys off),
// the Flex Consumption deployment container, and the container where the
// handler's instances claim finished Databricks runs (one blob per run, so
// that one instance records each; handler/runclaim).
param location string
param tags object
param name string
param identityPrincipalId string
param userPrincipalId string
param userPrincipalType string

var deploymentContainerName = 'app-package'
// runclaim.Container and runclaim.RetentionDays (checked by go test
// ./handler): claims outlive the runs they guard, which Databricks removes
// after 60 days (Jobs API, runs/get-output).
var runClaimsContainerName = 'nbtrace-run-claims'
var runClaimsRetentionDays = 90
// Blob owner for the host's keys, the deployment package and the run
// claims (the container is made here; the handler never makes it);
// queue and table for the host's own bookkeeping.
var roles = [
  'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner
  '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // Storage Queue Data Contributor
  '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // Storage Table Data Contributor
]

var identityRoles = [for role in roles: { principalId: identityPrincipalId, principalType: 'ServicePrincipal', roleDefinitionIdOrName: role }]
var userRoles = [for role in roles: { principalId: userPrincipalId, principalType: userPrincipalType, roleDefinitionIdOrName: role }]

module storage 'br/public:avm/res/storage/storage-account:0.33.0' = {
  params: {
    name: name
    location: location
    tags: tags
    skuName: 'Standard_LRS'
    kind: 'StorageV2'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    blobServices: {
      containers: [
        { name: deploymentContainerName, publicAccess: 'None' }
        { name: runClaimsContainerName, publicAccess: 'None' }
      ]
    }
    // Lifecycle management deletes each claim a fixed time after it was
    // made (https://learn.microsoft.com/azure/storage/blobs/lifecycle-management-overview).
    managementPolicyRules: [
      {
        name: 'expire-run-claims'
        enabled: true
        type: 'Lifecycle'
        definition: {
          actions: {
            baseBlob: {
              delete: { daysAfterCreationGreaterThan: runClaimsRetentionDays }
            }
          }
          filters: {
            blobTypes: ['blockBlob']
            prefixMatch: ['${runClaimsContainerName}/']
          }
        }
      }
    ]
    roleAssignments: concat(identityRoles, empty(userPrincipalId) ? [] : userRoles)
  }
}

output name string = storage.outputs.name
output blobEndpoint string = storage.outputs.primaryBlobEndpoint
output deploymentContainerName string = deploymentContainerName
