"""AI model adapters: OpenAI-compatible chat completions (also the Forest server's AI proxy) and
Anthropic messages, over plain HTTP."""
