#pragma once
// Table: aligned plain-text tables for refctl. Column widths count display cells, so Chinese
// institution names (two cells per character) line up in a terminal.

#include <ostream>
#include <string>
#include <vector>

namespace refctl {

// Terminal cells needed to show UTF-8 `text` (East Asian wide characters count 2).
size_t DisplayWidth(const std::string& text);

class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  // Numeric-looking cells are right-aligned.
  void Print(std::ostream& out) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace refctl
