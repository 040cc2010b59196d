"""The Salesforce-shaped HTTP surface: REST, OAuth 2.0, SOAP login."""
