"""Knowledge bases (issue 18): documents cut into chunks, embedded through the engine's embedding
path, and found again by hybrid search (`service.KnowledgeService`)."""
