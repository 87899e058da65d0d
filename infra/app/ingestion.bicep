// The notebook's identity for Application Insights: a user-assigned managed
// identity held by an Azure Databricks Access Connector. Code on Databricks
// reaches an Azure service as a managed identity only through a Unity
// Catalog service credential, which names an access connector and the
// user-assigned identity it holds
// (https://learn.microsoft.com/azure/databricks/connect/unity-catalog/cloud-services/service-credentials);
// the post-provision step creates that credential (nbtrace-ingestion) from
// main.bicep's DATABRICKS_ACCESS_CONNECTOR_ID and
// DATABRICKS_INGESTION_IDENTITY_ID. The identity publishes to Application
// Insights with Monitoring Metrics Publisher (monitoring.bicep) and holds no
// other role.
param location string
param tags object
param identityName string
param accessConnectorName string

module identity 'br/public:avm/res/managed-identity/user-assigned-identity:0.6.0' = {
  params: {
    name: identityName
    location: location
    tags: tags
  }
}

// avm/res/databricks/access-connector:0.4.3 (main.bicep): managedIdentities
// defaults to { systemAssigned: true }; naming only the user-assigned
// identity makes the connector's identity type 'UserAssigned', so the
// credential signs in as this identity and no other.
module accessConnector 'br/public:avm/res/databricks/access-connector:0.4.3' = {
  params: {
    name: accessConnectorName
    location: location
    tags: tags
    managedIdentities: { userAssignedResourceIds: [identity.outputs.resourceId] }
  }
}

output identityResourceId string = identity.outputs.resourceId
output identityPrincipalId string = identity.outputs.principalId
output accessConnectorResourceId string = accessConnector.outputs.resourceId
