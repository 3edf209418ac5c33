"""What every benchmark's Eyrie node shares: a config that makes the admin account (the API
needs a login since accounts came in) and keeps mDNS off (benchmarks only touch loopback), and
the HTTP Basic header its requests log in with."""
import base64

USER, PASSWORD = "admin", "bench-password"
CONFIG = (f'[auth]\nadmin_user = "{USER}"\nadmin_password = "{PASSWORD}"\n'
          "[discovery]\nenabled = false\n")
AUTH = {"authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
