"""Helpers shared by the tests; fixtures are in the conftest.py files, these are plain code.

- `processes`: free ports, spawning, waiting for TCP/HTTP, RedisServer, a sandbox process
  (the primitives are producer/cli/processes.py, which `make run` and bench use too);
- `workers`: `Workers`, the pool of real worker and beat processes, and `TEST_ENV`;
- `waiting`: `wait_for`, `wait_states`;
- `settings`: `settings_from_env`, the Settings a process with a KIRIM_* env would load;
- `receiver`: `Receiver`, the local HTTP endpoint for status callbacks, alerts, inbound
  webhooks and the sandbox's pushes;
- `api_server`: `ApiServer`, the ingest API as a uvicorn process, and the test API keys;
- `flower`: Flower as a process, headless Chromium;
- `reliability`: `check_run`, what "nothing lost, nothing sent twice" means.
"""
