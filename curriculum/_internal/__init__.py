"""The client library's internals: how byproducts leave the training thread and reach a store.

Not part of the public API: names here may change without notice.
"""
