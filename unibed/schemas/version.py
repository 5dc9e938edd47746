"""One version number for the whole set of contracts in unibed/schemas/.

Bump it whenever a stored document (recipe, manifest, label map, TFRecord
feature spec) changes incompatibly; readers refuse other versions.
"""

SCHEMA_VERSION = 1
