"""What the builder writes: the rendered build directory and the RunPod Hub manifests."""
