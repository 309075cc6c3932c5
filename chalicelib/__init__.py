"""Library behind the training service: the RAG engine, training jobs and the API's logic."""
