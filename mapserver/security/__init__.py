"""Access control, ArcGIS style: a users file with argon2 hashes (``users.py``), signed tokens
(``tokens.py``), per-service ``access`` in service definitions (``policy.py``), the ArcGIS
498/499/403 errors (``errors.py``) and the Flask side: ``generateToken``, the checks, CORS
(``web.py``). See README "Access control"."""
