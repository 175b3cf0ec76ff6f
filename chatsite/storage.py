"""Static file storage for production."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticStorage(CompressedManifestStaticFilesStorage):
    """Hashed, compressed static files, with ES module imports rewritten to the hashed names too.

    Without the rewrite the page loads a hashed client.<hash>.js that imports an unhashed ./connection.js, so a
    browser could mix files from two deploys.
    """

    support_js_module_import_aggregation = True
