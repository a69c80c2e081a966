"""The FastDeploy engine process and talking to it: supervisor, reaper, ports, model cache, client."""
