"""What customers said and what they are owed: inbound messages stored before routing,
the outbox every answer leaves through, and a conversation's history."""
