"""Who speaks when: voice embeddings clustered into speakers, and their labels on segments and words."""
