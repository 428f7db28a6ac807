"""The mitmproxy side of the addon scripts, one job a module.

``addons/cache_audit.py`` and ``addons/inject.py`` stay the scripts mitmproxy loads; their classes are made of
the mixins here (hooks found by attribute lookup, so inherited ones serve). Like the scripts, these modules import
mitmproxy and ``cachepin``; ``cachepin`` never imports them (``tests/rules/test_runtime_imports.py``).
"""
