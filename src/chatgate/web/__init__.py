"""The pages people see: the chat page (link sign-in) and the embeddable widget."""
