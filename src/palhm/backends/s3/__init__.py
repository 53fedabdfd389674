"""The aws-s3 backend, one concern per module:

- `backend`: `S3Backend` and its copy writer: the copy protocol on S3 (building
  manifest, commit, rollback, listing, rotation deletes), request options per store;
- `upload`: one object's sink: single PUT or multipart upload with bounded part
  buffers, part-size limits, size check after upload;
- `reader`: reading an object back (verify, get, restore) with retries on a dropped
  connection;
- `lock`: the run lock of a root: a local lock file on this host (S3 has no lock);
- `transition`: moving committed objects to `rot-storage-class` in place.

Only `backend` imports the others; they never import it (no cycle). boto3 is imported
through `palhm.aws`, only when a config uses this backend.
"""
