"""Deploy a pushed image on RunPod: a template and a serverless endpoint, created or updated by name
through RunPod's REST v2 management API (pure planning in `plan`, HTTP in `api`, orchestration in `apply`)."""
