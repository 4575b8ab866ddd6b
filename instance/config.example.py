# Copy to instance/config.py and fill in. Every name is also an environment variable, and the
# environment wins over this file. The README lists every setting.

# Required
FOREST_ENV_SECRET = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"  # 64 hex
FOREST_AUTH_SECRET = "the auth secret shared with your Forest agent"
AGENT_URL = "http://localhost:3310"

# Optional (defaults shown)
# FOREST_SERVER_URL = "https://api.forestadmin.com"
# DATABASE_URL = "postgresql://user:password@db.internal:5432/forest"  # unset: SQLite here
# HTTP_PORT = 3400
# POLLING_INTERVAL_S = 30
# MAX_CONCURRENT_RUNS = 10
# LOG_LEVEL = "Info"
