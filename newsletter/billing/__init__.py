"""The paid tier: plans and entitlements. The only package that will import ``stripe``."""
