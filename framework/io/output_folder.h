// The folders graft writes, and the rule that keeps it from destroying anything else:
// graft writes into, over or in place of a folder only when it recognises the folder as
// its own. What marks a folder as graft's is a file graft writes there and nobody else
// does: `.graft` in a run folder (train --output, compare --output), `graft_adapter.json`
// in an adapter folder, `trainer_state.json` in a checkpoint.
//
// Folders are replaced through staged siblings (`NAME.tmp.PID` written, `NAME` renamed
// to `NAME.old.PID`, the staged one renamed into place, the old one removed). A process
// killed on the way leaves those siblings behind: clean_stale_staging() removes the
// ones whose process is gone and puts back a `NAME.old.PID` whose `NAME` is missing.
#pragma once
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace graft::io {

// The marker file of a run folder.
inline constexpr const char* kRunFolderMarker = ".graft";

// Throws IoError (naming `folder`, `marker` and what to do) unless graft may replace
// `folder`: it is missing, an empty folder, or a folder holding `marker`. `what` names
// the kind of folder in the message ("adapter folder", "checkpoint").
void require_graft_folder(const std::filesystem::path& folder, const std::string& marker, const std::string& what,
                          const std::string& component);

// Makes `folder` ready to receive a run: created with its parents when missing; when it
// exists it must be a folder, writable, and either empty or graft's (it holds
// kRunFolderMarker, or `legacy(folder)` says an older graft, which wrote no marker,
// wrote it). Writes the marker. Throws IoError naming the folder otherwise.
void prepare_run_folder(const std::filesystem::path& folder, const std::string& component,
                        const std::function<bool(const std::filesystem::path&)>& legacy = {});

// Replaces `folder` (if any) by the complete folder `staged`, as described above.
void publish_folder(const std::filesystem::path& staged, const std::filesystem::path& folder);

// In `dir`, for each NAME of `names` (what graft writes there): every `NAME.tmp.PID`
// and `NAME.old.PID` whose PID is not a running process is removed, and a
// `NAME.old.PID` whose `NAME` is missing is renamed back to `NAME` (a kill between
// publish_folder's two renames). Each is reported on stderr. Staging left by a running
// process (another graft writing there) is left alone.
void clean_stale_staging(const std::filesystem::path& dir, const std::string& component, const std::vector<std::string>& names);

// True when a process with this id is running (it may belong to another user).
bool process_alive(long pid);

}  // namespace graft::io
