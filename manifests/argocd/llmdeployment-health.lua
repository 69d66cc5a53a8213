-- Argo CD health of a rightsizer.dev/v1alpha1 LLMDeployment, from its status conditions and observedGeneration
-- (written by the operator: operator/rightsizer/kube/status.py). Install it with argocd-cm.yaml next to this file.
-- docs/install.md has the table of states; tests/argocd runs this script in Argo CD itself.
--
--   Progressing  rightsizer has not yet acted on the current spec (status.observedGeneration behind
--                metadata.generation), or replicas are starting, rolling out or waiting for a GPU node (routine
--                during a scale-up: the operator reports Degraded=False until the wait passes its progress deadline)
--   Degraded     a real failure: the spec cannot be sized (Sized=False), policy forbids it (PolicyCompliant=False),
--                or the running workload is degraded (Degraded=True: a replica unschedulable past the progress
--                deadline, pods refused by admission, a child refused, replicas kept after a failed re-plan)
--   Suspended    spec.replicas asks for zero replicas
--   Healthy      Ready=True: sized, compliant and every wanted replica ready
--
-- Written for Argo CD's Lua sandbox (Lua 5.1, no string or math library).

local function find(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == kind then
      return condition
    end
  end
  return nil
end

local function text(condition, fallback)
  if condition ~= nil and condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  return fallback
end

local function zero_by_spec(spec)
  local replicas = (spec or {}).replicas or {}
  local min = replicas.min or 1
  local max = replicas.max or min
  if max == 0 then
    return true
  end
  -- desired (the scale subresource) is kept within min..max, so it only reaches zero when min allows it
  return replicas.desired ~= nil and replicas.desired <= 0 and min == 0
end

local hs = {}
local generation = obj.metadata.generation
local status = obj.status

if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for rightsizer to size this LLMDeployment"
  return hs
end
if generation ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for rightsizer to act on generation " .. generation
  return hs
end

-- Conditions from an older generation say nothing about the current spec: ignore them.
local conditions = {}
for _, condition in ipairs(status.conditions or {}) do
  if condition.observedGeneration == nil or generation == nil or condition.observedGeneration >= generation then
    table.insert(conditions, condition)
  end
end

local sized = find(conditions, "Sized")
if sized ~= nil and sized.status == "False" then
  hs.status = "Degraded"
  hs.message = "Cannot be sized (" .. (sized.reason or "Unknown") .. "): " .. text(sized, "no plan")
  return hs
end
local compliant = find(conditions, "PolicyCompliant")
if compliant ~= nil and compliant.status == "False" then
  hs.status = "Degraded"
  hs.message = "Violates policy: " .. text(compliant, "a SizingPolicy forbids the plan")
  return hs
end
local degraded = find(conditions, "Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = (degraded.reason or "Degraded") .. ": " .. text(degraded, "the workload is degraded")
  return hs
end

if zero_by_spec(obj.spec) then
  hs.status = "Suspended"
  hs.message = "Scaled to zero by spec.replicas"
  return hs
end

local ready = find(conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(sized, text(ready, "serving"))
  return hs
end

local progressing = find(conditions, "Progressing")
hs.status = "Progressing"
hs.message = text(progressing, text(ready, "Waiting for the replicas to become ready"))
return hs
