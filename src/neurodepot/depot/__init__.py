"""The depot: one folder with settings, the metadata database, and the blob store."""
