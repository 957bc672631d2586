-- Offloaded contexts are stored in the blob bucket of the region each task goes to
-- (fm_blobs_<region>), so that a region's workers may read their region's bucket only. A row
-- names the bucket its blob is in, for the cleanup sweep; '' is the mesh's shared bucket
-- (fm_blobs), where blobs went before.
ALTER TABLE context_blobs ADD COLUMN bucket text NOT NULL DEFAULT '';
ALTER TABLE context_blobs DROP CONSTRAINT context_blobs_pkey;
ALTER TABLE context_blobs ADD PRIMARY KEY (execution_id, bucket, name);
