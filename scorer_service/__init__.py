"""The hardness store: per-sample scores and the central subset selection.

The modules at this level are pure Python + numpy (no Ray, no web framework) so they can be
unit-tested fast; ``actor`` and ``serve_app`` are the thin Ray shells over them.
"""
