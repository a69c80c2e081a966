"""Images: build-context staging, Docker build and push, tags and labels."""
