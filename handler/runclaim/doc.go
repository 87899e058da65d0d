// Package runclaim claims finished Databricks runs in the app's storage
// account, so that one instance of the app records each run's spans
// however many instances see it end (jobrun.Claimer).
//
// A claim is a small blob, <job id>/<run id> in the container Container,
// created only if it does not exist (Put Blob with If-None-Match: *): the
// instance whose create succeeds (201) records the run; the others get 409
// BlobAlreadyExists and do not. Azure Storage decides between concurrent
// creates, so exactly one wins whatever the number of instances.
//
// The storage account is the one the Functions host uses, named by the
// same settings (AzureWebJobsStorage and its identity-based forms), and
// the app's managed identity signs in to it. Nothing is dialled until the
// first claim, which is made once, without retries, within the
// Recorder's time limit. The container is made by infra/app/storage.bicep
// (and by the local stack in its Azurite), whose lifecycle rule deletes
// the claims after RetentionDays.
package runclaim
