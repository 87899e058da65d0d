#!/bin/sh
# After `azd provision`: upload the notebook, create or update the
# Databricks job and let the app's managed identity run it (go run ./deploy,
# signed in as the deploying user through the Azure CLI, who has
# Contributor on the workspace and so is let in as an admin), then store
# the job id where the app reads it: the azd environment (so the next
# provision keeps it) and the Function App's settings. No portal step, no secret copied by
# hand: the App Insights connection string goes from the resource straight
# into the Databricks secret scope.
set -eu
: "${DATABRICKS_HOST:?run through azd: the provision outputs are missing}"
: "${DATABRICKS_AZURE_RESOURCE_ID:?}"
: "${AZURE_RESOURCE_GROUP:?}"
: "${AZURE_FUNCTION_APP_NAME:?}"
: "${APPLICATIONINSIGHTS_RESOURCE_ID:?}"
: "${AZURE_CLIENT_ID:?}"

APPLICATIONINSIGHTS_CONNECTION_STRING=$(az resource show --ids "$APPLICATIONINSIGHTS_RESOURCE_ID" --query properties.ConnectionString -o tsv)
export APPLICATIONINSIGHTS_CONNECTION_STRING DATABRICKS_HOST DATABRICKS_AZURE_RESOURCE_ID
app_client_id=$AZURE_CLIENT_ID
unset DATABRICKS_TOKEN AZURE_CLIENT_ID # sign in as the deploying user, not the app's identity

out=$(go run ./deploy -app-client-id "$app_client_id")
job_id=$(printf '%s\n' "$out" | sed -n 's/^DATABRICKS_JOB_ID=//p')
[ -n "$job_id" ] || { echo "the deploy step printed no job id" >&2; exit 1; }

azd env set DATABRICKS_JOB_ID "$job_id"
az functionapp config appsettings set --resource-group "$AZURE_RESOURCE_GROUP" --name "$AZURE_FUNCTION_APP_NAME" \
  --settings "DATABRICKS_JOB_ID=$job_id" --output none
echo "Databricks job $job_id is ready; the app starts it with the trace of each notebook request."
