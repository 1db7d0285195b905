"""The Chat page: conversations, streaming answers, documents, tools."""
