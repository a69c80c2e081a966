"""RunPod entry point for qwen3-8b-cached.

The Hub requires handler.py at the root; it only starts worker_runtime.

Rendered by fastdeploy-runpod-workers 0.1.0; the image's ENTRYPOINT runs the same module.
"""

import runpy

if __name__ == "__main__":
    runpy.run_module("worker_runtime", run_name="__main__", alter_sys=True)
