"""The harness: mitmdump and the gateway simulator as child processes, and the commands built on them.

``processes`` starts and stops mitmdump (with the addons loaded by path from
the checkout, as users load them) and the simulator; the tests use it too.
``demo`` and ``verify`` are ``scripts/demo`` and ``scripts/verify``
(``python -m cachepin_tools.harness.demo``, ``... .verify``), built from one
module per job: ``conversations`` (what is said), ``target`` (to whom),
``drive`` (through the SDKs), ``passes`` (one run through mitmdump),
``report`` (what the audit made of it), ``present`` (what is printed) and
``command`` (errors, exit statuses and signals).
"""
