-- An approval link is issued to one person (an approver the step names); the decision made
-- through it is recorded as theirs. Null: a link of an approval open to any responder.
ALTER TABLE playbook_approval_links ADD COLUMN issued_to TEXT;
